#if Cluster
import Foundation
import Testing
import TestSupport

@testable import AssistantStore
@testable import PostgresStore
@testable import TelegramAssistant

/// The whole bot on PostgreSQL (the Cluster build, on `TEST_DATABASE_URL`): the same rules as on
/// SQLite, and a database that goes away and comes back.
@Suite(.timeLimit(.minutes(2)), .enabled(if: StoreFixture.testDatabaseURL != nil, "needs TEST_DATABASE_URL (deploy/test.sh)"))
struct PostgresBotTests {
    @Test func manyChatsAreEachAnsweredOnce() async throws {
        let fixture = StoreFixture(backend: .postgres)
        let harness = try BotHarness(store: try await fixture.open())
        let chats = (1...30).map { Int64(7_000 + $0) }
        try await harness.withBot { _ in
            for chat in chats { harness.telegram.deliverText("hello from \(chat)", chatID: chat) }
            try await harness.eventually("every answer") { chats.allSatisfy { harness.texts($0).count == 1 } }
            try await harness.eventually("the ledger closed") { await harness.store.openUpdatesCount == 0 }
        }
        for chat in chats {
            let conversation = try await harness.store.conversation(kind: "telegram", externalID: chat)
            #expect(try await harness.store.allMessages(conversationID: conversation.id).map(\.role) == [.user, .assistant])
        }
        #expect(harness.llm.chatRequests.count == chats.count)
    }

    /// Shutdown while a final waits out a 429: the next start (a new process, the same database)
    /// delivers the saved answer without asking the model again.
    @Test func aFinalCutOffByShutdownIsDeliveredAfterTheRestart() async throws {
        let fixture = StoreFixture(backend: .postgres)
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let llm = try FakeOpenAIServer()
        llm.enqueue(.answer("The **saved** answer."))
        telegram.failNext("sendMessage", status: 429, description: "Too Many Requests: retry after 30")
        do {
            let first = try BotHarness(llmServer: llm, telegram: telegram, store: try await fixture.open())
            try await first.withBot { _ in
                telegram.deliverText("question", chatID: 805)
                try await first.eventually("the final waiting") { !telegram.calls("sendMessage").isEmpty }
            }
            #expect(await first.store.openUpdatesCount == 1, "the update stays open")
        }
        let second = try BotHarness(llmServer: llm, telegram: telegram, store: try await fixture.open())
        try await second.withBot { _ in
            try await second.eventually("the saved answer") { telegram.visibleMessages(chatID: 805).count == 1 }
            try await second.eventually("handled") { await second.store.openUpdatesCount == 0 }
        }
        #expect(telegram.visibleMessages(chatID: 805).map(\.text) == ["The saved answer."])
        #expect(llm.chatRequests.count == 1, "the model was asked once")
    }
}
#endif
