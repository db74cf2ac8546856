import Foundation
import Testing
import TestSupport

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import Support
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd
@testable import TerminalFrontEnd

/// A final answer must arrive: it waits out any `retry_after` and any backoff, bounded only by
/// shutdown; what shutdown leaves undelivered is delivered after the restart from what was saved.
@Suite(.timeLimit(.minutes(2))) struct FinalDeliveryTests {
    static func reply(_ harness: BotHarness) -> [String: Any]? { harness.replyRecords.first }

    /// Telegram under flood control often asks for 20–30 s. The final used to be given up after
    /// 15 s, logged as a shutdown, and marked handled: the answer was saved but never seen.
    @Test func aPrivateFinalWaitsOutARetryAfterLongerThanFifteenSeconds() async throws {
        let harness = try BotHarness()
        harness.telegram.failNext("sendMessage", status: 429, description: "Too Many Requests: retry after 16")
        try await harness.withBot { _ in
            harness.telegram.deliverText("please answer", chatID: 801)
            try await harness.eventually("the answer", timeout: .seconds(40)) { harness.texts(801) == ["Echo: please answer"] }
            try await harness.eventually("handled") { await harness.store.openUpdatesCount == 0 }
        }
        let record = try #require(Self.reply(harness))
        #expect(record["error_type"] == nil, "\(record)")
        #expect(record["rate_limited"] as? Int == 1)
    }

    /// A group's answer streams into one message; its final edit waits out the 429 too, instead of
    /// leaving the partial streaming text behind.
    @Test func aGroupsFinalEditWaitsOutALongRetryAfter() async throws {
        let harness = try BotHarness()
        let group: Int64 = -100_801
        let answer = String(repeating: "group answer words ", count: 12).trimmingCharacters(in: .whitespaces)
        harness.llm.enqueue(.answer(answer, chunkSize: 40, pause: .milliseconds(30)))
        // One 429 for a streaming edit, one more for the final edit: about 32 s in all.
        harness.telegram.failNext("editMessageText", status: 429, description: "Too Many Requests: retry after 16")
        harness.telegram.failNext("editMessageText", status: 429, description: "Too Many Requests: retry after 16")
        try await harness.withBot { _ in
            harness.telegram.deliverText("@test_assistant_bot talk", chatID: group, chatType: "supergroup", userID: 5, messageID: 9)
            try await harness.eventually("the complete answer", timeout: .seconds(60)) { harness.texts(group) == [answer] }
            try await harness.eventually("handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(Self.reply(harness)?["error_type"] == nil)
    }

    /// A 5xx means the request reached Telegram and may have been applied; it is retried (a
    /// duplicate is better than a lost answer) and logged so operators can count such retries.
    @Test func aServerErrorOnTheFinalIsRetriedAndLoggedAsAmbiguous() async throws {
        let harness = try BotHarness()
        harness.telegram.failNext("sendMessage", status: 502, description: "Bad Gateway")
        harness.telegram.failNext("sendMessage", status: 500, description: "Internal Server Error")
        try await harness.withBot { _ in
            harness.telegram.deliverText("hello", chatID: 802)
            try await harness.eventually("the answer") { harness.texts(802) == ["Echo: hello"] }
            try await harness.eventually("handled") { await harness.store.openUpdatesCount == 0 }
        }
        let retries = harness.log.records.filter { $0["error_type"] as? String == "ambiguous_delivery" }
        #expect(retries.count == 2, "\(retries)")
        #expect(retries.allSatisfy { $0["level"] as? String == "warning" })
    }

    /// The connection is cut after Telegram applied the message: the bot cannot know, so it sends
    /// again. The user may see the answer twice, never zero times, and the update is closed. On a
    /// new connection the bot sees the cut and logs its retry; on one kept alive from an earlier
    /// call libcurl itself sends the request again once on a new connection (it cannot tell this
    /// from a server that closed an idle connection just as the request went), unlogged.
    @Test(arguments: [false, true]) func aConnectionCutAfterTheSendIsSentAgainAndTheAnswerIsNeverLost(keepAlive: Bool) async throws {
        let harness = try BotHarness(telegram: FakeTelegramServer(limits: .init(scale: BotHarness.scale), keepAlive: keepAlive))
        harness.telegram.hangUpAfterApplying("sendMessage")
        try await harness.withBot { _ in
            harness.telegram.deliverText("hello", chatID: 803)
            try await harness.eventually("the answer") { harness.texts(803).count == 2 }
            try await harness.eventually("handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.texts(803) == ["Echo: hello", "Echo: hello"])
        if keepAlive {
            #expect(harness.telegram.connectionsAccepted < harness.telegram.calls.count, "calls share connections")
        } else {
            #expect(harness.log.records.contains { $0["error_type"] as? String == "ambiguous_delivery" })
        }
    }

    /// A chat that blocked the bot cannot be delivered to: that is final, logged at warning with its
    /// type, and the update is closed instead of retried forever.
    @Test func anUndeliverableFinalIsLoggedAtWarningAndClosed() async throws {
        let harness = try BotHarness()
        harness.llm.enqueue(.answer(String(repeating: "words ", count: 40), chunkSize: 30, pause: .milliseconds(20)))
        try await harness.withBot { _ in
            harness.telegram.deliverText("hello", chatID: 804)
            try await harness.eventually("a draft") { !harness.telegram.drafts(chatID: 804).isEmpty }
            harness.telegram.block(chatID: 804)
            try await harness.eventually("the reply record") { harness.replyRecords.count == 1 }
            try await harness.eventually("handled") { await harness.store.openUpdatesCount == 0 }
        }
        let record = try #require(Self.reply(harness))
        #expect(record["level"] as? String == "warning")
        #expect(record["error_type"] as? String == "telegram_forbidden")
    }

    /// A streaming message the user deleted: the next update starts a new message instead of
    /// repeating the failing edit on every tick, and the answer arrives whole.
    @Test func aStreamingMessageDeletedByTheUserIsNotEditedOverAndOver() async throws {
        let harness = try BotHarness()
        let group: Int64 = -100_806
        let answer = String(repeating: "streamed group words ", count: 30).trimmingCharacters(in: .whitespaces)
        harness.llm.enqueue(.answer(answer, chunkSize: 400, pause: .milliseconds(40)))
        var deleted = 0
        try await harness.withBot { _ in
            harness.telegram.deliverText("@test_assistant_bot go", chatID: group, chatType: "supergroup", userID: 5, messageID: 9)
            try await harness.eventually("the streaming message") { !harness.telegram.visibleMessages(chatID: group).isEmpty }
            let streaming = try #require(harness.telegram.visibleMessages(chatID: group).first)
            deleted = streaming.messageID
            harness.telegram.userDeletes(chatID: group, messageID: deleted)
            try await harness.eventually("the reply") { harness.replyRecords.count == 1 }
        }
        let failedEdits = harness.telegram.calls("editMessageText").filter { $0.status == 400 && $0.parameters["message_id"]?.int == deleted }
        #expect(failedEdits.count <= 1, "\(failedEdits.count) edits of a deleted message")
        #expect(harness.texts(group).last == answer)
    }

    /// Shutdown while a final waits out a 429: nothing was sent, so nothing is cut. The update
    /// stays open and the next start delivers the saved answer without asking the model again.
    @Test func aFinalCutOffByShutdownIsDeliveredAfterTheRestartFromWhatWasSaved() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/bot.sqlite"
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let llm = try FakeOpenAIServer()
        let answer = "The **saved** answer."
        llm.enqueue(.answer(answer))
        telegram.failNext("sendMessage", status: 429, description: "Too Many Requests: retry after 30")
        do {
            let first = try BotHarness(llmServer: llm, telegram: telegram, store: try SQLiteStore(path: path))
            try await first.withBot { _ in
                telegram.deliverText("question", chatID: 805)
                try await first.eventually("the final waiting") { !telegram.calls("sendMessage").isEmpty }
            }
            #expect(telegram.visibleMessages(chatID: 805).isEmpty)
            #expect(await first.store.openUpdatesCount == 1, "the update stays open")
        }
        let second = try BotHarness(llmServer: llm, telegram: telegram, store: try SQLiteStore(path: path))
        try await second.withBot { _ in
            try await second.eventually("the saved answer") { telegram.visibleMessages(chatID: 805).count == 1 }
            try await second.eventually("handled") { await second.store.openUpdatesCount == 0 }
        }
        let delivered = try #require(telegram.visibleMessages(chatID: 805).first)
        #expect(delivered.text == "The saved answer.")
        #expect(delivered.entities.map(\.type) == ["bold"])
        #expect(llm.chatRequests.count == 1, "the model was asked once")
    }
}
