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

    /// `/image` and `/voice` make the same turns as a Telegram photo and voice note, so both paths
    /// can be tried without Telegram.
    @Test func imagesAndRecordingsFromFiles() async throws {
        let harness = try Harness(overrides: ["TRANSCRIPTION_MODEL": "whisper-1"])
        let directory = TemporaryDirectory()
        let image = directory.path + "/my shot.png"
        let voice = directory.path + "/note.ogg"
        #expect(FileManager.default.createFile(atPath: image, contents: Data(TestImages.png(width: 640, height: 480))))
        // One Ogg page whose granule position says 96,000 samples: two seconds at 48 kHz.
        var ogg = Array("OggS".utf8) + [0, 4] + [0x00, 0x77, 0x01, 0, 0, 0, 0, 0] + Array(repeating: 0, count: 14)
        ogg += Array(repeating: 9, count: 100)
        #expect(FileManager.default.createFile(atPath: voice, contents: Data(ogg)))
        harness.server.enqueueTranscription(.text("what time is it in Tokyo"))
        let (screen, id) = try await run(
            harness, ["/image \"\(image)\" what is in this picture?", "/voice \(voice)", "/image /nonexistent.png", "/voice", "/stats"], fresh: true)
        let requests = harness.server.chatRequests
        #expect(requests.count == 2)
        #expect(requests.first?.messages.last?.content == "what is in this picture?")
        #expect(requests.first?.messages.last?.images.first?.hasPrefix("data:image/png;base64,") == true)
        #expect(requests.last?.messages.last?.content == "what time is it in Tokyo")
        #expect(harness.server.transcriptionRequests.first?.fileName == "note.ogg")
        #expect(screen.contains("🎤 what time is it in Tokyo\n\nEcho: what time is it in Tokyo"))
        #expect(screen.contains("Cannot read /nonexistent.png."))
        #expect(screen.contains("Usage: /voice PATH"))
        #expect(screen.contains("Images: 1, voice: 2 s"))
        #expect(MediaFile.oggSeconds(ogg) == 2)
        let conversation = try #require(try await harness.store.conversation(id: id))
        #expect(conversation.images == 1 && conversation.audioSeconds == 2)
    }

    @Test func voiceWithoutATranscriptionModelSaysSo() async throws {
        let harness = try Harness()
        let directory = TemporaryDirectory()
        let voice = directory.path + "/note.ogg"
        #expect(FileManager.default.createFile(atPath: voice, contents: Data(Array("OggS".utf8) + Array(repeating: 0, count: 60))))
        let (screen, _) = try await run(harness, ["/voice \(voice)"], fresh: true)
        #expect(screen.contains("Voice messages are not set up on this bot."))
        #expect(harness.server.requests.isEmpty)
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
