import Foundation
import Logging
import ServiceLifecycle
import Testing
import TestSupport

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd

/// Voice notes become text through `/audio/transcriptions`: the user sees the transcript first,
/// the transcript is the turn, and every failure is a clear line with the chat calls' retry rules.
@Suite(.timeLimit(.minutes(2))) struct VoiceTests {
    static let voiceOn = ["TRANSCRIPTION_MODEL": "whisper-1", "TRANSCRIPTION_PRICE_PER_MINUTE": "0.006"]

    @Test func aVoiceNoteIsTranscribedShownAndAnswered() async throws {
        let harness = try BotHarness(overrides: Self.voiceOn)
        harness.llm.enqueueTranscription(.text(" Remind me what a monad is. "))
        let audio = Array("OggS".utf8) + Array(repeating: 3, count: 500)
        try await harness.withBot { _ in
            harness.telegram.deliverVoice(chatID: 1201, seconds: 30, fileID: "V1", bytes: audio)
            try await harness.eventually("transcript and answer") { harness.texts(1201).count == 2 }
        }
        let shown = harness.telegram.visibleMessages(chatID: 1201)
        #expect(shown.map(\.text) == ["🎤 Remind me what a monad is.", "Echo: Remind me what a monad is."])
        #expect(harness.llm.chatRequests.last?.messages.last?.content == "Remind me what a monad is.")
        let upload = try #require(harness.llm.transcriptionRequests.first)
        #expect(upload.model == "whisper-1")
        #expect(upload.fileName == "voice.ogg" && upload.fileType == "audio/ogg")
        #expect(upload.file == audio, "sent as it is, no conversion")
        let reply = try #require(harness.replyRecords.first)
        #expect(reply["input_kinds"] as? [String] == ["voice"])
        #expect("\(reply["audio_seconds"] ?? "")" == "30")
        #expect(reply["transcription_ms"] != nil)
        let conversation = try await harness.store.conversation(kind: "telegram", externalID: 1201)
        #expect(conversation.audioSeconds == 30)
        #expect(abs(conversation.costUSD - 0.003) < 1e-9, "half a minute at 0.006 a minute")
        #expect(try await harness.assistant().engine.stats(conversationID: conversation.id).text.contains("Images: 0, voice: 30 s"))
        #expect(ConversationStats.minutes(150) == "2.5 min")
    }

    /// `/help` says what this bot reads, as it is configured.
    @Test func helpNamesWhatTheBotReads() async throws {
        #expect(MessageHandler.help(vision: true, voice: true).contains("I can also read photos, voice messages and text files."))
        #expect(MessageHandler.help(vision: true, voice: false).contains("I can also read photos and text files."))
        #expect(MessageHandler.help(vision: false, voice: false).contains("I can also read text files."))
        let harness = try BotHarness(overrides: Self.voiceOn)
        try await harness.withBot { _ in
            harness.telegram.deliverText("/help", chatID: 1207)
            try await harness.eventually("the help") { harness.texts(1207).count == 1 }
        }
        #expect(harness.texts(1207).first?.contains("I can also read photos, voice messages and text files.") == true)
    }

    @Test func withoutATranscriptionModelVoiceGetsANotice() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliverVoice(chatID: 1202, fileID: "V2")
            try await harness.eventually("the notice") { harness.texts(1202).count == 1 }
        }
        #expect(harness.texts(1202) == ["Voice messages are not set up on this bot."])
        #expect(harness.telegram.calls("file").isEmpty)
        #expect(harness.llm.requests.isEmpty)
    }

    @Test func aRecordingOverTheLimitIsRefusedBeforeTheDownload() async throws {
        let harness = try BotHarness(overrides: Self.voiceOn.merging(["TRANSCRIPTION_MAX_SECONDS": "120"]) { $1 })
        try await harness.withBot { _ in
            harness.telegram.deliverVoice(chatID: 1203, seconds: 121, fileID: "V3")
            try await harness.eventually("the notice") { harness.texts(1203).count == 1 }
        }
        #expect(harness.texts(1203) == ["This recording is too long for me: I can transcribe up to 2 minutes."])
        #expect(harness.telegram.calls("file").isEmpty)
    }

    /// A rate limit is waited out and retried; a quota or a persistent 5xx is a clear line.
    @Test func transcriptionFaultsFollowTheChatRetryRules() async throws {
        let harness = try BotHarness(overrides: Self.voiceOn)
        harness.llm.enqueueTranscription(.rateLimited(retryAfterSeconds: 1), .text("hello there"))
        harness.llm.enqueueTranscription(.quotaExceeded)
        harness.llm.enqueueTranscription(.serverError(status: 503), .serverError(status: 502), .serverError(status: 500))
        harness.llm.enqueueTranscription(.malformed, .malformed, .malformed)
        try await harness.withBot { _ in
            harness.telegram.deliverVoice(chatID: 1204, messageID: 1, fileID: "V4")
            try await harness.eventually("the first answer") { harness.texts(1204).count == 2 }
            harness.telegram.deliverVoice(chatID: 1204, messageID: 2, fileID: "V5")
            try await harness.eventually("the quota notice") { harness.texts(1204).count == 3 }
            harness.telegram.deliverVoice(chatID: 1204, messageID: 3, fileID: "V6")
            try await harness.eventually("the server notice") { harness.texts(1204).count == 4 }
            harness.telegram.deliverVoice(chatID: 1204, messageID: 4, fileID: "V7")
            try await harness.eventually("the malformed notice") { harness.texts(1204).count == 5 }
        }
        let expected: [String] = [
            "🎤 hello there", "Echo: hello there", TranscriptionError.failed(.quotaExceeded).userMessage,
            TranscriptionError.failed(.server(status: 500)).userMessage, TranscriptionError.failed(.malformedEvent).userMessage,
        ]
        #expect(harness.texts(1204) == expected)
        #expect(harness.llm.transcriptionRequests.count == 9, "2 for the rate limit, 1 for the quota, 3 for each kept fault")
        let lines: [[String: Any]] = harness.log.records.filter { $0["msg"] as? String == "transcription_call" }
        let calls: [String] = lines.compactMap { $0["error_type"] as? String }
        let wanted: [String] = ["transcription_quota_exceeded", "transcription_server_error", "transcription_malformed_event"]
        #expect(calls == wanted)
    }

    /// A reply to a voice note the bot has transcribed reuses the transcript: no download, no call.
    @Test func aReplyToATranscribedVoiceNoteReusesTheTranscript() async throws {
        let harness = try BotHarness(overrides: Self.voiceOn)
        harness.llm.enqueueTranscription(.text("buy milk and eggs"))
        try await harness.withBot { _ in
            harness.telegram.deliverVoice(chatID: 1205, messageID: 1, fileID: "V8")
            try await harness.eventually("the answer") { harness.texts(1205).count == 2 }
            let replied = #"{"message_id":1,"date":1,"chat":{"id":1205,"type":"private"},"from":{"id":1205,"is_bot":false,"first_name":"U"},"voice":{"file_id":"V8","file_unique_id":"u-V8","duration":4}}"#
            harness.telegram.deliverText("what was on the list?", chatID: 1205, messageID: 3, replyToJSON: replied)
            try await harness.eventually("the second answer") { harness.texts(1205).count == 3 }
        }
        #expect(harness.telegram.calls("file").count == 1)
        #expect(harness.llm.transcriptionRequests.count == 1)
        #expect(harness.llm.chatRequests.last?.messages.last?.content == "[In reply to U's voice message: \"buy milk and eggs\"]\n\nwhat was on the list?")
    }

    /// Shutdown in the middle of a transcription leaves the update open; the next start transcribes
    /// again and answers once: one transcript, one answer, nothing lost.
    @Test func aRestartDuringATranscriptionAnswersOnce() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/bot.sqlite"
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let llm = try FakeOpenAIServer()
        llm.enqueueTranscription(.stall)
        do {
            let harness = try BotHarness(
                llmServer: llm, telegram: telegram, overrides: Self.voiceOn.merging(["SHUTDOWN_GRACE_SECONDS": "0"]) { $1 },
                store: try SQLiteStore(path: path))
            let bot = try await harness.connect()
            let group = bot.serviceGroup(logger: harness.log.logger)
            let running = Task { try await group.run() }
            defer { running.cancel() }  // no bot outlives its test, however the test ends
            telegram.deliverVoice(chatID: 1206, fileID: "V9")
            try await harness.eventually("the transcription under way") { llm.transcriptionRequests.count == 1 }
            await group.triggerGracefulShutdown()
            try await running.value
            #expect(telegram.visibleMessages(chatID: 1206).isEmpty)
            #expect(await harness.store.openUpdatesCount == 1, "the voice note stays open")
        }
        llm.enqueueTranscription(.text("second try"))
        let second = try BotHarness(llmServer: llm, telegram: telegram, overrides: Self.voiceOn, store: try SQLiteStore(path: path))
        try await second.withBot { _ in
            try await second.eventually("transcript and answer") { telegram.visibleMessages(chatID: 1206).count == 2 }
            try await second.eventually("handled") { await second.store.openUpdatesCount == 0 }
        }
        #expect(telegram.visibleMessages(chatID: 1206).map(\.text) == ["🎤 second try", "Echo: second try"])
    }
}
