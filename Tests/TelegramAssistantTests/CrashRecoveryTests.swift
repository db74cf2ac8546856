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

/// The real built binary, killed with SIGKILL at different moments of a streamed reply and started
/// again against the same database and the same fake servers.
@Suite(.timeLimit(.minutes(3))) struct CrashRecoveryTests {
    /// `telegram-assistant`, built next to this test bundle by `swift test`.
    static var binary: URL? {
        let candidates = [
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("telegram-assistant"),
            Bundle.main.bundleURL.appendingPathComponent("telegram-assistant"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// The binary running `run`; killed when the test lets go of it (`ChildProcess`).
    final class Bot {
        let process: ChildProcess
        init(binary: URL, environment: [String: String]) throws {
            process = try ChildProcess(binary.path, ["run"], environment: environment)
        }
        /// SIGKILL, then waits until the bot is gone.
        func kill() async throws {
            process.send(SIGKILL)
            try await process.end()
        }
        /// SIGTERM, then the exit status once the bot has shut down.
        func terminate() async throws -> Int32 {
            process.send(SIGTERM)
            try await process.end()
            return process.terminationStatus
        }
    }

    /// What the real binary needs to run against the two fakes, plus `extra`.
    static func environment(
        _ llm: FakeOpenAIServer, _ telegram: FakeTelegramServer, database: String, _ extra: [String: String] = [:]
    ) -> [String: String] {
        [
            "OPENAI_API_KEY": llm.settings.apiKey, "OPENAI_BASE_URL": llm.baseURL.absoluteString, "OPENAI_MODEL": "m",
            "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.baseURL.absoluteString,
            "TELEGRAM_POLL_TIMEOUT": "1", "DATABASE_PATH": database,
        ].merging(extra) { $1 }
    }

    /// Where the first reply stands when the bot is killed, and what the user must see in the end.
    enum Moment: String, CaseIterable, Sendable {
        /// The question is at the model; nothing is on screen.
        case beforeAnyText
        /// A draft is up and the stream goes on.
        case whileStreaming
        /// Telegram has applied the final message; the bot has not heard back. The one window no bot
        /// can close (the Bot API has no idempotency key): the saved answer is sent again after the
        /// restart, because a duplicate is better than a lost answer.
        case duringTheFinalSend
        /// The answer is complete and saved; its final message waits out a long 429.
        case whileTheFinalWaits
        /// The answer is on screen, perhaps not yet recorded as sent.
        case afterTheAnswer
        /// Everything is recorded; the bot waits in a long poll.
        case whileIdle
    }

    @Test(arguments: Moment.allCases)
    func aKilledBotNeverAnswersTwiceNorLosesATurn(moment: Moment) async throws {
        let binary = try #require(Self.binary, "the telegram-assistant binary is built by swift test")
        let directory = TemporaryDirectory()
        let databasePath = directory.path + "/db.sqlite"
        let llm = try FakeOpenAIServer()
        let telegram = try FakeTelegramServer()
        let environment = Self.environment(llm, telegram, database: databasePath, ["LOG_LEVEL": "error"])
        func eventually(_ what: String, _ condition: () async -> Bool) async throws {
            try await waitUntil(what, timeout: .seconds(30), condition)
        }

        let answer = String(repeating: "slowly streamed words ", count: 20)
        switch moment {
        case .beforeAnyText: llm.enqueue(.stallBeforeHeaders)
        case .whileStreaming: llm.enqueue(.stall(after: "the first words "))  // a draft that stays up
        default: llm.enqueue(.answer(answer, chunkSize: 120, pause: .milliseconds(40)))
        }
        if moment == .duringTheFinalSend { telegram.holdAnswers(to: "sendMessage") }
        if moment == .whileTheFinalWaits { telegram.failNext("sendMessage", status: 429, description: "Too Many Requests: retry after 40") }
        let first = try Bot(binary: binary, environment: environment)
        telegram.deliverText("first question", chatID: 4242)
        switch moment {
        case .beforeAnyText:
            try await eventually("the question at the model") { llm.chatRequests.count == 1 }
        case .whileStreaming:
            try await eventually("a draft") { !telegram.drafts(chatID: 4242).isEmpty }
        case .duringTheFinalSend:
            try await eventually("the final message applied") { telegram.heldAnswers == 1 }
        case .whileTheFinalWaits:
            try await eventually("the final message refused") { telegram.calls("sendMessage").count == 1 }
        case .afterTheAnswer:
            try await eventually("the answer") { !telegram.visibleMessages(chatID: 4242).isEmpty }
        case .whileIdle:
            try await eventually("the answer") { !telegram.visibleMessages(chatID: 4242).isEmpty }
            let observer = try SQLiteStore(path: databasePath)
            try await eventually("the update recorded as handled") { (try? await observer.openUpdates().isEmpty) == true }
        }
        try await first.kill()
        telegram.answerHeld()

        telegram.deliverText("second question", chatID: 4242, messageID: 2)
        let second = try Bot(binary: binary, environment: environment)
        try await eventually("the second answer") {
            telegram.visibleMessages(chatID: 4242).contains { $0.text == "Echo: second question" }
        }
        #expect(try await second.terminate() == 0)

        let texts = telegram.visibleMessages(chatID: 4242).map(\.text)
        let firstAnswers = texts.filter { $0 == answer.trimmingCharacters(in: .whitespaces) }.count
        let notices = texts.filter { $0 == "I was restarted while answering your message. Please send it again." }.count
        // The first question reaches the model once; its answer is never lost once it was complete,
        // shown twice only when the kill fell inside a send; the user always learns what happened.
        switch moment {
        case .beforeAnyText, .whileStreaming:
            #expect(firstAnswers == 0 && notices == 1, "\(texts)")
        case .duringTheFinalSend:
            #expect(firstAnswers == 2 && notices == 0, "\(texts)")
        case .whileTheFinalWaits:
            #expect(firstAnswers == 1 && notices == 0, "\(texts)")
        case .afterTheAnswer:
            // Visible, but perhaps not yet recorded as sent: the same window as during the send.
            #expect((1...2).contains(firstAnswers) && notices == 0, "\(texts)")
        case .whileIdle:
            #expect(firstAnswers == 1 && notices == 0, "\(texts)")
        }
        #expect(texts.filter { $0 == "Echo: second question" }.count == 1)
        #expect(llm.chatRequests.count == 2, "the first question reached the model once")
        // No turn was lost: both questions are in the conversation, and nothing is left open.
        let store = try SQLiteStore(path: databasePath)
        let conversation = try await store.conversation(kind: "telegram", externalID: 4242)
        let contents = try await store.allMessages(conversationID: conversation.id).map(\.content)
        #expect(contents.filter { $0 == "first question" }.count == 1)
        #expect(contents.filter { $0 == "second question" }.count == 1)
        if firstAnswers >= 1 {
            #expect(contents.contains { $0.trimmingCharacters(in: .whitespaces) == answer.trimmingCharacters(in: .whitespaces) })
        }
        #expect(try await store.openUpdates().isEmpty)
    }

    @Test func aSecondBotOnTheSameDatabaseExitsAtOnceNamingTheFirst() async throws {
        let binary = try #require(Self.binary, "the telegram-assistant binary is built by swift test")
        let directory = TemporaryDirectory()
        let llm = try FakeOpenAIServer()
        let telegram = try FakeTelegramServer()
        // A directory that does not exist yet, as with the default ./data/assistant.sqlite.
        let environment = Self.environment(llm, telegram, database: directory.path + "/data/db.sqlite")
        let first = try Bot(binary: binary, environment: environment)
        try await waitUntil("the first bot polling") { telegram.pollsReceived > 0 }

        let (status, message) = try await runToEnd(binary, ["run"], environment: environment, timeout: .seconds(20))
        #expect(status == 1)
        #expect(
            message.contains("another telegram-assistant (pid \(first.process.pid)) is running a bot on the database"),
            "\(message)")
        #expect(first.process.isRunning, "the first bot goes on")
        #expect(try await first.terminate() == 0)
    }

    @Test func aSecondSignalDoesNotWaitForTheGracePeriod() async throws {
        let binary = try #require(Self.binary, "the telegram-assistant binary is built by swift test")
        let directory = TemporaryDirectory()
        let llm = try FakeOpenAIServer()
        let telegram = try FakeTelegramServer()
        llm.enqueue(.stall(after: "thinking "))
        let bot = try Bot(
            binary: binary,
            environment: Self.environment(llm, telegram, database: directory.path + "/db.sqlite", ["SHUTDOWN_GRACE_SECONDS": "600"]))
        telegram.deliverText("question", chatID: 77)
        try await waitUntil("a draft") { !telegram.drafts(chatID: 77).isEmpty }
        bot.process.send(SIGTERM)
        try await waitUntil("polling to stop", timeout: .seconds(20)) {
            let polls = telegram.pollsReceived
            try? await Task.sleep(for: .seconds(1.5))
            return telegram.pollsReceived == polls
        }
        #expect(bot.process.isRunning, "the first signal waits for the reply in flight")
        bot.process.send(SIGTERM)
        try await waitUntil("the exit", timeout: .seconds(20)) { !bot.process.isRunning }
        #expect(bot.process.terminationStatus == 1)
    }

    /// An update whose reply waits for a permit has shown nothing: it stays "received", so a restart
    /// answers it instead of telling the user it was cut off. "answering" is committed with the
    /// user's turn, once the answer really starts.
    @Test func aReplyWaitingForItsTurnIsNotYetAnswering() async throws {
        let harness = try BotHarness(overrides: ["MAX_CONCURRENT_REPLIES": "1"])
        harness.llm.enqueue(.stall(after: "busy "))
        try await harness.withBot { _ in
            harness.telegram.deliverText("first", chatID: 961)
            try await harness.eventually("the first draft") { !harness.telegram.drafts(chatID: 961).isEmpty }
            harness.telegram.deliverText("second", chatID: 962)
            try await harness.eventually("the second received") { await harness.store.openUpdatesCount == 2 }
            let open = try await harness.store.openUpdates()
            #expect(open.map(\.update.chatID) == [961, 962])
            #expect(open.map(\.status) == [.answering, .received])
        }
    }

}
