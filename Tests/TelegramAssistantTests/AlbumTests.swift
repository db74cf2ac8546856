import Foundation
import Testing
import TestSupport

@testable import AssistantStore
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd

/// An album is one question: every photo goes into one turn, answered once, and the parts' ledger
/// rows move together, so a restart never answers a part on its own.
@Suite(.timeLimit(.minutes(2))) struct AlbumTests {
    @Test func anAlbumIsOneTurnAnsweredOnce() async throws {
        var harness = try BotHarness()
        harness.albumSettle = .seconds(2)  // room for a slow test machine between the parts
        try await harness.withBot { _ in
            harness.telegram.deliverPhoto(chatID: 1301, caption: "compare these", messageID: 1, fileID: "A1", sizes: [(400, 300)], mediaGroupID: "g1")
            harness.telegram.deliverPhoto(chatID: 1301, messageID: 2, fileID: "A2", sizes: [(400, 300)], mediaGroupID: "g1")
            harness.telegram.deliverPhoto(chatID: 1301, messageID: 3, fileID: "A3", sizes: [(300, 400)], mediaGroupID: "g1")
            try await harness.eventually("the answer") { harness.texts(1301).count == 1 }
            try await harness.eventually("all parts handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.llm.chatRequests.count == 1)
        let turn = try #require(harness.llm.chatRequests.first?.messages.last)
        #expect(turn.content == "compare these")
        #expect(turn.images.count == 3)
        #expect(harness.texts(1301) == ["Echo: compare these"])
        #expect(harness.telegram.visibleMessages(chatID: 1301).first?.replyTo == nil || harness.telegram.visibleMessages(chatID: 1301).first?.replyTo == 1)
    }

    /// Parts that come in a later poll still join, as long as they come within the settle time.
    @Test func partsFromALaterPollJoinTheAlbum() async throws {
        var harness = try BotHarness()
        // Room for a loaded test machine between the two polls: at the start of the suite a test's
        // task can wait seconds for a thread.
        harness.albumSettle = .seconds(5)
        try await harness.withBot { _ in
            harness.telegram.deliverPhoto(chatID: 1302, messageID: 1, fileID: "B1", sizes: [(400, 300)], mediaGroupID: "g2")
            // Confirmed by a later poll (and so received): the count stays 0 from then on, where
            // "one open update" lasts only until the album settles, and a late look could miss it.
            try await harness.eventually("the first part received") { harness.telegram.pendingUpdateCount == 0 }
            harness.telegram.deliverPhoto(chatID: 1302, caption: "what are these?", messageID: 2, fileID: "B2", sizes: [(400, 300)], mediaGroupID: "g2")
            try await harness.eventually("the answer") { harness.texts(1302).count == 1 }
            try await harness.eventually("all parts handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.llm.chatRequests.count == 1)
        #expect(harness.llm.chatRequests.first?.messages.last?.images.count == 2)
        #expect(harness.llm.chatRequests.first?.messages.last?.content == "what are these?", "the caption may be on any part")
    }

    /// Shutdown cuts the album's answer off: it is marked once, and no part is answered on its own
    /// after the restart.
    @Test func aRestartNeverAnswersAPartOnItsOwn() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/bot.sqlite"
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let llm = try FakeOpenAIServer()
        llm.enqueue(.stall(after: "The first photo shows "))
        do {
            var harness = try BotHarness(llmServer: llm, telegram: telegram, overrides: ["SHUTDOWN_GRACE_SECONDS": "0"], store: try SQLiteStore(path: path))
            harness.albumSettle = .seconds(2)
            let bot = try await harness.connect()
            let group = bot.serviceGroup(logger: harness.log.logger)
            let running = Task { try await group.run() }
            defer { running.cancel() }  // no bot outlives its test, however the test ends
            telegram.deliverPhoto(chatID: 1303, caption: "describe", messageID: 1, fileID: "C1", sizes: [(400, 300)], mediaGroupID: "g3")
            telegram.deliverPhoto(chatID: 1303, messageID: 2, fileID: "C2", sizes: [(400, 300)], mediaGroupID: "g3")
            try await harness.eventually("the draft") { !telegram.drafts(chatID: 1303).isEmpty }
            await group.triggerGracefulShutdown()
            try await running.value
            #expect(await harness.store.openUpdatesCount == 0, "both parts are settled with the answer")
        }
        let second = try BotHarness(llmServer: llm, telegram: telegram, store: try SQLiteStore(path: path))
        try await second.withBot { _ in
            telegram.deliverText("still there?", chatID: 1303, messageID: 3)
            try await second.eventually("the next answer") { telegram.visibleMessages(chatID: 1303).count == 2 }
        }
        #expect(telegram.visibleMessages(chatID: 1303).map(\.text) == ["The first photo shows\n\n(interrupted)", "Echo: still there?"])
        #expect(llm.chatRequests.count == 2)
    }
}
