import Foundation
import Synchronization
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

@Suite(.timeLimit(.minutes(2))) struct TerminalChatTests {
    final class Screen: Sendable {
        private let content = Mutex("")
        func write(_ text: String) { content.withLock { $0 += text } }
        var text: String { content.withLock { $0 } }
    }

    func run(_ harness: Harness, _ lines: [String], fresh: Bool = false) async throws -> (String, Int64) {
        let screen = Screen()
        let chat = try await TerminalChat(engine: harness.engine, fresh: fresh, logger: harness.log.logger, write: screen.write)
        await chat.run(lines: lines.async)
        return (screen.text, chat.conversationID)
    }

    @Test func streamsAnswersAndHandlesCommandsWithoutTheModel() async throws {
        let harness = try Harness(overrides: ["INPUT_PRICE_PER_MILLION": "1"])
        let (screen, _) = try await run(harness, ["/help", "Hello there", "/stats", "/model", "/model other-model", "/model", "/bogus", "/exit", "never sent"])
        #expect(screen.contains("telegram-assistant chat · model test-model"))
        #expect(screen.contains("/clear"))
        #expect(screen.contains("Echo: Hello there"))
        #expect(screen.contains("Messages in memory: 2"))
        #expect(screen.contains("Estimated cost: $0.0000"))
        #expect(screen.contains("Model: test-model"))
        #expect(screen.contains("Model switched to other-model"))
        #expect(screen.contains("Model: other-model"))
        #expect(screen.contains("Unknown command /bogus"))
        #expect(screen.hasSuffix("Bye.\n"))
        #expect(harness.server.chatRequests.count == 1, "only the message reached the model")
    }

    @Test func endOfInputLeavesCleanly() async throws {
        let harness = try Harness()
        let (screen, _) = try await run(harness, ["hi"])
        #expect(screen.contains("Echo: hi"))
        #expect(screen.hasSuffix("Bye.\n"))
    }

    @Test func errorsAreOneShortLine() async throws {
        let harness = try Harness()
        harness.server.enqueue(.rateLimited(retryAfterSeconds: 3600))
        let (screen, _) = try await run(harness, ["hi"])
        #expect(screen.contains("> Rate limit reached. Please wait a moment and try again.\n\n>"))
        #expect(!screen.contains("libcurl"))
    }

    @Test func aBrokenAnswerShowsTheInterruptedMarker() async throws {
        let harness = try Harness()
        harness.server.enqueue(.droppedStream(after: "Half of it "))
        let (screen, _) = try await run(harness, ["hi"])
        #expect(screen.contains("Half of it (interrupted)"))
    }

    @Test func resumesTheLastConversationUnlessAskedForANewOne() async throws {
        let harness = try Harness()
        let (_, first) = try await run(harness, ["remember me"])
        let (resumed, second) = try await run(harness, ["/stats"])
        #expect(second == first)
        #expect(resumed.contains("resumed with 2 messages in memory"))
        let (_, third) = try await run(harness, ["/stats"], fresh: true)
        #expect(third != first)
    }

    @Test func clearEmptiesTheMemory() async throws {
        let harness = try Harness()
        let (screen, _) = try await run(harness, ["one", "/clear", "/stats", "two"])
        #expect(screen.contains("History cleared."))
        #expect(screen.contains("Messages in memory: 0"))
        let last = try #require(harness.server.chatRequests.last)
        #expect(last.messages.map(\.content).contains("one") == false)
    }
}

extension Array where Element: Sendable {
    /// The elements as an async sequence, for feeding scripted input.
    var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}
