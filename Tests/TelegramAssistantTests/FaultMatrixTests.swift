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

/// The rows of the README's fault matrix that no other suite covers: each fault seen the way a
/// user sees it, through Telegram, with what is logged and what is kept.
@Suite(.timeLimit(.minutes(2))) struct FaultMatrixTests {
    // MARK: The model provider, seen through Telegram

    struct ModelFault: Sendable, CustomTestStringConvertible {
        var name: String
        var behaviors: [FakeOpenAIServer.Behavior]
        var overrides: [String: String] = [:]
        /// What the user sees in the end.
        var shown: String
        var errorType: String?
        var testDescription: String { name }
    }

    static let modelFaults: [ModelFault] = [
        .init(name: "quota used up", behaviors: [.quotaExceeded], shown: LLMError.quotaExceeded.userMessage, errorType: "quota_exceeded"),
        .init(name: "key rejected", behaviors: [.unauthorized], shown: LLMError.unauthorized(status: 401, message: "").userMessage, errorType: "unauthorized"),
        .init(name: "5xx three times", behaviors: Array(repeating: .serverError(status: 502), count: 3), shown: LLMError.server(status: 502).userMessage, errorType: "server_error"),
        .init(name: "rate limit longer than worth waiting", behaviors: [.rateLimited(retryAfterSeconds: 60)], shown: LLMError.rateLimited(retryAfter: nil).userMessage, errorType: "rate_limited"),
        .init(name: "empty streams", behaviors: Array(repeating: .emptyStream, count: 3), shown: LLMError.emptyStream.userMessage, errorType: "empty_stream"),
        .init(
            name: "stream dropped after text", behaviors: [.droppedStream(after: "Half of it ")],
            shown: "Half of it\n\n(interrupted) \(LLMError.streamEndedUnexpectedly.userMessage)", errorType: "interrupted_stream_ended_unexpectedly"),
        // The error event came in the same read as the text, before any of it was shown: retried.
        .init(name: "error event before text was shown", behaviors: [.inStreamError(after: "Some ", message: "overloaded")], shown: "Echo: question", errorType: nil),
        .init(
            name: "context too long twice", behaviors: [.contextLengthExceeded, .contextLengthExceeded], shown: LLMError.contextLengthExceeded.userMessage,
            errorType: "context_length_exceeded"),
        .init(
            name: "primary down, fallback up", behaviors: Array(repeating: .serverError(status: 503), count: 3), overrides: ["OPENAI_FALLBACK_MODEL": "backup"],
            shown: "Echo: question\n\n(answered by the fallback model backup)", errorType: nil),
        .init(
            name: "primary and fallback down", behaviors: Array(repeating: .serverError(status: 503), count: 4), overrides: ["OPENAI_FALLBACK_MODEL": "backup"],
            shown: LLMError.server(status: 503).userMessage, errorType: "server_error"),
    ]

    @Test(arguments: modelFaults)
    func aModelFaultReachesTheUserAsOneClearMessage(fault: ModelFault) async throws {
        let harness = try BotHarness(overrides: fault.overrides)
        for behavior in fault.behaviors { harness.llm.enqueue(behavior) }
        try await harness.withBot { _ in
            harness.telegram.deliverText("question", chatID: 820)
            try await harness.eventually("the reply") { harness.replyRecords.count == 1 }
            try await harness.eventually("handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.texts(820) == [fault.shown])
        #expect(harness.replyRecords.first?["error_type"] as? String == fault.errorType)
        // The question is always kept; an answer that got somewhere is kept too.
        let conversation = try await harness.store.conversation(kind: "telegram", externalID: 820)
        #expect(try await harness.store.allMessages(conversationID: conversation.id).first?.content == "question")
    }

    // MARK: Input

    static let hostileInputs: [(String, String)] = [
        ("4,096 emoji", String(repeating: "😀", count: 4096)),
        ("4,096 code points of combining marks", String(repeating: "e\u{301}", count: 2048)),
        ("one character of 5,000 code points", "a" + String(repeating: "\u{301}", count: 4999)),
        ("right-to-left and zero-width text", String(repeating: "مرحبا\u{200F} \u{200B}שלום\u{200D} ", count: 300)),
        ("control characters", "bell\u{7} nul\u{0} escape\u{1B}[31m vertical\u{B}tab\u{9} end"),
        ("text that looks like Markdown or HTML", "<b>not html</b> **bold** [link](javascript:alert(1)) `code ```fence _under_ \\*escaped\\*"),
    ]

    @Test(arguments: hostileInputs.indices)
    func hostileTextIsAnsweredWholeAndNeverRejectedByTelegram(index: Int) async throws {
        let (name, text) = Self.hostileInputs[index]
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliverText(text, chatID: 830)
            try await harness.eventually("the reply to \(name)") { harness.replyRecords.count == 1 }
        }
        let sent = harness.telegram.calls.filter { ["sendMessage", "editMessageText"].contains($0.method) }
        #expect(!sent.contains { $0.status == 400 }, "\(name): Telegram refused a part")
        #expect(harness.replyRecords.first?["error_type"] == nil, "\(name)")
        let shown = harness.texts(830).joined().unicodeScalars.filter { !$0.properties.isWhitespace }.count
        let asked = MarkdownRenderer.render("Echo: " + text).text.unicodeScalars.filter { !$0.properties.isWhitespace }.count
        if name.hasPrefix("one character") {
            let start = harness.texts(830).first.map { String(String.UnicodeScalarView($0.unicodeScalars.prefix(7))) }
            #expect(start == "Echo: a", "a cluster too long for any message is clipped, not lost")
        } else {
            #expect(shown == asked, "\(name): \(shown) of \(asked) code points shown")
        }
    }

    /// Edited messages, forwards, unknown update kinds and entity types: nothing blocks, nothing is
    /// answered twice, and forwarded text is answered like any text.
    @Test func editsForwardsAndUnknownKindsNeverBlockTheQueue() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliver(
                updateJSON: #""edited_message":{"message_id":1,"date":1,"edit_date":2,"chat":{"id":840,"type":"private"},"from":{"id":840,"is_bot":false,"first_name":"U"},"text":"edited"}"#)
            harness.telegram.deliver(updateJSON: #""message_reaction":{"chat":{"id":840,"type":"private"},"message_id":1,"date":1}"#)
            harness.telegram.deliver(
                updateJSON:
                    #""message":{"message_id":2,"date":1,"chat":{"id":840,"type":"private"},"from":{"id":840,"is_bot":false,"first_name":"U"},"forward_origin":{"type":"hidden_user","sender_user_name":"Someone","date":1},"text":"forwarded words","entities":[{"type":"future_entity_type","offset":0,"length":9}]}"#)
            harness.telegram.addChat(840, type: "private")
            try await harness.eventually("the answer") { harness.texts(840).count == 1 }
            try await harness.eventually("all confirmed and closed") { await harness.store.openUpdatesCount == 0 && harness.telegram.pendingUpdateCount == 0 }
        }
        #expect(harness.texts(840) == ["Echo: forwarded words"])
    }

    /// 500 updates waiting after downtime: every one is closed, each chat answered in order, and a
    /// chat's overflow costs one notice.
    @Test func aBacklogOfFiveHundredUpdatesIsWorkedOff() async throws {
        let harness = try BotHarness()
        let chats = (0..<100).map { Int64(20_000 + $0) }
        for chat in chats {
            for index in 1...5 { harness.telegram.deliverText("m\(index)", chatID: chat, messageID: index) }
        }
        #expect(harness.telegram.pendingUpdateCount == 500)
        try await harness.withBot { _ in
            try await harness.eventually("all closed", timeout: .seconds(90)) {
                await harness.store.openUpdatesCount == 0 && harness.telegram.pendingUpdateCount == 0 && harness.replyRecords.count == 400
            }
        }
        for chat in chats {
            let texts = harness.texts(chat)
            #expect(texts.filter { $0.hasPrefix("Echo: ") } == ["Echo: m1", "Echo: m2", "Echo: m3", "Echo: m4"])
            #expect(texts.filter { $0 == ChatDispatcher.overflowNotice }.count == 1)
        }
        #expect(harness.telegram.tooManyRequests == 0, "\(harness.telegram.floodRejections)")
    }

    // MARK: Telegram

    /// A forum topic closed or deleted, a chat that is gone: final, logged at warning, closed.
    @Test(arguments: ["Bad Request: TOPIC_CLOSED", "Bad Request: message thread not found", "Bad Request: chat not found"])
    func aChatOrTopicThatIsGoneEndsTheReplyWithAWarning(description: String) async throws {
        let harness = try BotHarness()
        harness.telegram.failNext("sendMessage", status: 400, description: description)
        try await harness.withBot { _ in
            harness.telegram.deliverText("hello", chatID: 850)
            try await harness.eventually("the reply record") { harness.replyRecords.count == 1 }
            try await harness.eventually("handled") { await harness.store.openUpdatesCount == 0 }
        }
        let record = try #require(harness.replyRecords.first)
        #expect(record["level"] as? String == "warning")
        #expect(record["error_type"] as? String == "telegram_bad_request")
        #expect(harness.telegram.calls("sendMessage").count == 1, "not retried")
    }

    /// A proxy's HTML page or cut JSON instead of an envelope: while polling it is a failed poll
    /// (backed off, then recovered); on a final it is an ambiguous failure, retried.
    @Test func malformedAnswersFromTelegramAreSurvived() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            try await harness.eventually("polling") { harness.telegram.pollsReceived > 0 }
            harness.telegram.answerNextRaw("getUpdates", status: 200, body: "{\"ok\":true,\"result\":[{\"update_id\":")
            harness.telegram.answerNextRaw("sendMessage", status: 502, body: "<html>Bad Gateway</html>")
            harness.telegram.deliverText("hello", chatID: 851)
            try await harness.eventually("the answer") { harness.texts(851) == ["Echo: hello"] }
        }
        #expect(harness.log.records.contains { $0["error_type"] as? String == "telegram_malformed_response" })
        #expect(harness.log.records.contains { $0["error_type"] as? String == "ambiguous_delivery" })
    }

    /// The token revoked while running: polling cannot go on, so the bot stops with a clear log
    /// line instead of polling a dead token forever (systemd then starts it and it exits 78).
    @Test func aTokenRevokedWhileRunningStopsTheBotWithAClearLine() async throws {
        let harness = try BotHarness()
        let group = try await harness.connect().serviceGroup(logger: harness.log.logger)
        let running = Task { try await group.run() }
        defer { running.cancel() }  // no bot outlives its test, however the test ends
        try await harness.eventually("polling") { harness.telegram.pollsReceived > 0 }
        for _ in 0..<3 { harness.telegram.failNext("getUpdates", status: 401, description: "Unauthorized") }
        await #expect(throws: TelegramError.unauthorized) { try await running.value }
        #expect(harness.log.records.contains { $0["msg"] as? String == "token_rejected" && $0["level"] as? String == "critical" })
    }
}
