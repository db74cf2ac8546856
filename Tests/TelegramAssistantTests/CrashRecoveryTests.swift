import Foundation
import Testing
import TestSupport

@testable import TelegramAssistant

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

    final class Bot {
        let process = Process()
        init(binary: URL, environment: [String: String]) throws {
            process.executableURL = binary
            process.arguments = ["run"]
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
        }
        func kill() {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        func terminate() -> Int32 {
            process.terminate()
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    enum Moment: String, CaseIterable, Sendable {
        case whileStreaming, afterTheAnswer
    }

    @Test(arguments: Moment.allCases)
    func aKilledBotNeverAnswersTwiceNorLosesATurn(moment: Moment) async throws {
        let binary = try #require(Self.binary, "the telegram-assistant binary is built by swift test")
        let directory = TemporaryDirectory()
        let llm = try FakeOpenAIServer()
        let telegram = try FakeTelegramServer()
        let environment = [
            "OPENAI_API_KEY": llm.settings.apiKey, "OPENAI_BASE_URL": llm.baseURL.absoluteString, "OPENAI_MODEL": "m",
            "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.baseURL.absoluteString,
            "TELEGRAM_POLL_TIMEOUT": "1", "DATABASE_PATH": directory.path + "/db.sqlite", "LOG_LEVEL": "error",
        ]
        func eventually(_ what: String, _ condition: () -> Bool) async throws {
            let deadline = ContinuousClock.now + .seconds(30)
            while !condition() {
                guard ContinuousClock.now < deadline else {
                    Issue.record("timed out waiting for \(what)")
                    throw CancellationError()
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }

        let answer = String(repeating: "slowly streamed words ", count: 20)
        llm.enqueue(.answer(answer, chunkSize: 120, pause: .milliseconds(40)))
        let first = try Bot(binary: binary, environment: environment)
        telegram.deliverText("first question", chatID: 4242)
        switch moment {
        case .whileStreaming:
            try await eventually("a draft") { !telegram.drafts(chatID: 4242).isEmpty }
        case .afterTheAnswer:
            try await eventually("the answer") { !telegram.visibleMessages(chatID: 4242).isEmpty }
        }
        first.kill()
        let sentBeforeCrash = telegram.visibleMessages(chatID: 4242).count

        telegram.deliverText("second question", chatID: 4242, messageID: 2)
        let second = try Bot(binary: binary, environment: environment)
        try await eventually("the second answer") {
            telegram.visibleMessages(chatID: 4242).contains { $0.text == "Echo: second question" }
        }
        #expect(second.terminate() == 0)

        let texts = telegram.visibleMessages(chatID: 4242).map(\.text)
        // The first question was never answered twice, and the user always learns what happened:
        // the answer arrived, or a notice asks to send it again. (A kill between Telegram accepting
        // the answer and the database recording it gives both: the one window no bot can close.)
        let firstAnswers = texts.filter { $0 == answer.trimmingCharacters(in: .whitespaces) }
        let notices = texts.filter { $0.hasPrefix("I was restarted while answering") }
        #expect(firstAnswers.count <= 1, "\(texts)")
        #expect(notices.count <= 1, "\(texts)")
        #expect(firstAnswers.count + notices.count >= 1, "\(texts)")
        if moment == .whileStreaming, sentBeforeCrash == 0 { #expect(notices.count == 1 && firstAnswers.isEmpty, "\(texts)") }
        #expect(texts.filter { $0 == "Echo: second question" }.count == 1)
        // No turn was lost: both questions are in the conversation.
        let store = try Store(path: directory.path + "/db.sqlite")
        let conversation = try store.conversation(kind: "telegram", externalID: 4242)
        let contents = try store.allMessages(conversationID: conversation.id).map(\.content)
        #expect(contents.contains("first question"))
        #expect(contents.contains("second question"))
        #expect(try store.openUpdates().isEmpty)
    }

    @Test func aSecondSignalDoesNotWaitForTheGracePeriod() async throws {
        let binary = try #require(Self.binary, "the telegram-assistant binary is built by swift test")
        let directory = TemporaryDirectory()
        let llm = try FakeOpenAIServer()
        let telegram = try FakeTelegramServer()
        llm.enqueue(.stall(after: "thinking "))
        let bot = try Bot(
            binary: binary,
            environment: [
                "OPENAI_API_KEY": llm.settings.apiKey, "OPENAI_BASE_URL": llm.baseURL.absoluteString, "OPENAI_MODEL": "m",
                "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.baseURL.absoluteString,
                "TELEGRAM_POLL_TIMEOUT": "1", "DATABASE_PATH": directory.path + "/db.sqlite", "SHUTDOWN_GRACE_SECONDS": "600",
            ])
        telegram.deliverText("question", chatID: 77)
        try await waitUntil("a draft") { !telegram.drafts(chatID: 77).isEmpty }
        kill(bot.process.processIdentifier, SIGTERM)
        try await waitUntil("polling to stop", timeout: .seconds(20)) {
            let polls = telegram.pollsReceived
            try? await Task.sleep(for: .seconds(1.5))
            return telegram.pollsReceived == polls
        }
        #expect(bot.process.isRunning, "the first signal waits for the reply in flight")
        kill(bot.process.processIdentifier, SIGTERM)
        try await waitUntil("the exit", timeout: .seconds(20)) { !bot.process.isRunning }
        #expect(bot.process.terminationStatus == 1)
    }
}
