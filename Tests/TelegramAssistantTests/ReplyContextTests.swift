import Foundation
import Testing
import TestSupport

@testable import AssistantStore
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd

/// A reply to an earlier message carries what it replies to: the model reads "and of Italy?" with
/// the answer it follows, and the stored turn keeps it for later requests.
@Suite(.timeLimit(.minutes(2))) struct ReplyContextTests {
    func message(chat: Int64, id: Int, text: String, quote: String? = nil, replyTo: String) -> String {
        let quoted = quote.map { #","quote":{"text":"\#($0)","position":0,"is_manual":true}"# } ?? ""
        return #""message":{"message_id":\#(id),"date":1,"chat":{"id":\#(chat),"type":"private"},"from":{"id":\#(chat),"is_bot":false,"first_name":"Ann"},"text":"\#(text)","reply_to_message":\#(replyTo)\#(quoted)}"#
    }

    @Test func aReplyToTheBotsAnswerBringsThatAnswerAlong() async throws {
        let harness = try BotHarness()
        let bot = harness.telegram.bot
        harness.telegram.addChat(971, type: "private")
        try await harness.withBot { _ in
            harness.telegram.deliver(
                updateJSON: message(
                    chat: 971, id: 2, text: "and of Italy?",
                    replyTo: #"{"message_id":1,"date":1,"chat":{"id":971,"type":"private"},"from":{"id":\#(bot.id),"is_bot":true,"first_name":"Assistant"},"text":"The capital of France is Paris."}"#))
            try await harness.eventually("the answer") { harness.texts(971).count == 1 }
        }
        let request = try #require(harness.llm.chatRequests.last)
        #expect(request.messages.last?.content == "[In reply to your earlier answer: \"The capital of France is Paris.\"]\n\nand of Italy?")
        // The turn's parts are in its log lines, the engine's too.
        #expect(harness.replyRecords.first?["input_kinds"] as? [String] == ["text", "reply_context"])
        #expect(harness.log.records.first { $0["msg"] as? String == "model_call" }?["input_kinds"] as? [String] == ["text", "reply_context"])
        let conversation = try await harness.store.conversation(kind: "telegram", externalID: 971)
        #expect(try await harness.store.allMessages(conversationID: conversation.id).first?.content.hasPrefix("[In reply to your earlier answer") == true)
    }

    /// A quote is the part that matters: it goes in instead of the whole message.
    @Test func aQuoteGoesInInsteadOfTheWholeMessage() async throws {
        let harness = try BotHarness()
        harness.telegram.addChat(972, type: "private")
        try await harness.withBot { _ in
            harness.telegram.deliver(
                updateJSON: message(
                    chat: 972, id: 5, text: "why this one?", quote: "the third option",
                    replyTo: #"{"message_id":4,"date":1,"chat":{"id":972,"type":"private"},"from":{"id":55,"is_bot":false,"first_name":"Bob"},"text":"Pick one: the first option, the second option or the third option."}"#))
            try await harness.eventually("the answer") { harness.texts(972).count == 1 }
        }
        #expect(harness.llm.chatRequests.last?.messages.last?.content == "[In reply to Bob's message: \"the third option\"]\n\nwhy this one?")
    }

    @Test func aLongRepliedToMessageIsCut() {
        let long = String(repeating: "word ", count: 600)
        let replied = Telegram.RepliedMessage(message_id: 1, from: nil, text: long)
        let message = Telegram.Message(
            message_id: 2, from: nil, chat: .init(id: 1, type: "private"), date: 1, text: "so?", reply_to_message: replied)
        let turn = message.withReplyContext("so?", botID: 9)
        #expect(turn.hasPrefix("[In reply to an earlier message: \"word word"))
        #expect(turn.contains("…\"]\n\nso?"))
        #expect(turn.count < Telegram.Message.maxReplyContext + 80)
    }
}
