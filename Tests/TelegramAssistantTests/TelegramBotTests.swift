import CurlHTTP
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

@Suite(.timeLimit(.minutes(2))) struct TelegramBotTests {
    @Test func privateChatsStreamWithDraftsThenPersistTheAnswer() async throws {
        let harness = try BotHarness()
        let answer = "Here is **the answer**, streamed in many small pieces so that drafts have time to show."
        harness.llm.enqueue(.answer(answer, chunkSize: 12, pause: .milliseconds(15)))
        try await harness.withBot { _ in
            harness.telegram.deliverText("Explain it", chatID: 501)
            try await harness.eventually("the final message") { harness.texts(501).count == 1 }
        }
        let expected = MarkdownRenderer.render(answer)
        let final = try #require(harness.telegram.visibleMessages(chatID: 501).first)
        #expect(final.text == expected.text)
        #expect(final.entities.map(\.type) == ["bold"])
        let drafts = harness.telegram.calls("sendMessageDraft")
        #expect(!drafts.isEmpty)
        #expect(drafts.allSatisfy { $0.parameters["can_stop"] == .bool(true) })
        #expect(Set(drafts.compactMap { $0.parameters["draft_id"]?.int64 }).count == 1, "one draft id per reply")
        #expect(harness.telegram.calls("editMessageText").isEmpty)
        #expect(harness.telegram.tooManyRequests == 0)
        #expect(harness.telegram.calls("sendChatAction").count >= 1)
        let record = try #require(harness.replyRecords.first)
        for key in ["chat_id", "user_id", "model", "latency_ms", "ttft_ms", "first_visible_ms", "prompt_tokens", "completion_tokens", "usage_estimated", "telegram_calls", "rate_limited"] {
            #expect(record[key] != nil, "reply record lacks \(key)")
        }
        #expect(!harness.log.text.contains("Explain it"), "no message text in info logs")
        #expect(!harness.log.text.contains(harness.telegram.token))
    }

    /// Every line about a chat's reply carries the chat, from the child logger the handler makes,
    /// and the engine's lines add the conversation.
    @Test func replyAndModelLinesCarryTheChatAndTheConversation() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliverText("hello", chatID: 4711)
            try await harness.eventually("the reply line") { harness.replyRecords.count == 1 }
        }
        let conversation = try await harness.store.conversation(kind: "telegram", externalID: 4711)
        let reply = try #require(harness.replyRecords.first)
        #expect(reply["chat_id"] as? Int == 4711)
        let call = try #require(harness.log.records.first { $0["msg"] as? String == "model_call" })
        #expect(call["chat_id"] as? Int == 4711)
        #expect(call["conversation_id"] as? Int == Int(conversation.id))
    }

    @Test func withoutDraftSupportPrivateChatsStreamByEditing() async throws {
        let harness = try BotHarness(supportsDrafts: false)
        harness.llm.enqueue(.answer(String(repeating: "word ", count: 60), chunkSize: 20, pause: .milliseconds(10)))
        try await harness.withBot { _ in
            harness.telegram.deliverText("hi", chatID: 502)
            try await harness.eventually("the final text") { harness.texts(502).first?.hasSuffix("word") == true && harness.replyRecords.count == 1 }
        }
        #expect(harness.texts(502) == [String(repeating: "word ", count: 60).trimmingCharacters(in: .whitespaces)])
        #expect(!harness.telegram.calls("editMessageText").isEmpty)
        #expect(harness.telegram.tooManyRequests == 0)
    }

    /// A short answer can be complete while the message that starts streaming it is still on its
    /// way. That send must finish and be edited into the answer, not be abandoned and sent again.
    @Test func anAnswerThatEndsWhileItsFirstMessageIsInFlightIsSentOnce() async throws {
        let harness = try BotHarness()
        let group: Int64 = -100778
        try await harness.withBot { _ in
            harness.telegram.holdAnswers(to: "sendMessage")
            harness.telegram.deliverText("@test_assistant_bot quick one", chatID: group, chatType: "supergroup", userID: 1, messageID: 5)
            try await harness.eventually("the first message applied") { harness.telegram.heldAnswers == 1 }
            // The answer is saved: the reply's producer returns next, and streaming is told to stop.
            try await harness.eventually("the answer saved") {
                guard let conversation = try? await harness.store.conversation(kind: "telegram", externalID: group) else { return false }
                return (try? await harness.store.messageCount(conversationID: conversation.id)) == 2
            }
            harness.telegram.answerHeld()
            try await harness.eventually("the reply") { harness.replyRecords.count == 1 }
        }
        #expect(harness.texts(group) == ["Echo: quick one"])
    }

    @Test func groupsAnswerOnlyWhenAddressedAndQuoteTheTrigger() async throws {
        let harness = try BotHarness()
        let group: Int64 = -100777
        harness.llm.enqueue(.answer(String(repeating: "group words ", count: 30), chunkSize: 25, pause: .milliseconds(10)))
        try await harness.withBot { _ in
            harness.telegram.deliverText("just people talking", chatID: group, chatType: "supergroup", userID: 1, messageID: 10)
            harness.telegram.deliverText("/stats@some_other_bot", chatID: group, chatType: "supergroup", userID: 1, messageID: 11)
            harness.telegram.deliverText("@test_assistant_bot what's up?", chatID: group, chatType: "supergroup", userID: 1, messageID: 12)
            try await harness.eventually("the group answer") { harness.replyRecords.count == 1 }
        }
        #expect(harness.llm.chatRequests.count == 1)
        #expect(harness.llm.chatRequests.first?.messages.last?.content == "what's up?")
        let messages = harness.telegram.visibleMessages(chatID: group)
        #expect(messages.count == 1)
        #expect(messages.first?.replyTo == 12)
        #expect(messages.first?.text == String(repeating: "group words ", count: 30).trimmingCharacters(in: .whitespaces))
        #expect(harness.telegram.calls("sendMessageDraft").isEmpty, "no drafts in groups")
        #expect(harness.telegram.tooManyRequests == 0)
    }

    @Test func repliesToTheBotAndBareCommandsCountInGroups() async throws {
        let harness = try BotHarness()
        let group: Int64 = -100778
        try await harness.withBot { _ in
            harness.telegram.deliverText("and then?", chatID: group, chatType: "group", userID: 1, messageID: 20, replyToBotMessage: 5)
            try await harness.eventually("the reply") { harness.replyRecords.count == 1 }
            harness.telegram.deliverText("/help", chatID: group, chatType: "group", userID: 1, messageID: 21)
            try await harness.eventually("the help") { harness.texts(group).count == 2 }
        }
        // The model reads the bot's message it replies to in front of it (issue 11).
        #expect(harness.texts(group)[0] == "Echo: [In reply to your earlier answer: \"earlier\"]\n\nand then?")
        #expect(harness.texts(group)[1].contains("/clear"))
    }

    @Test func longAnswersContinueInNewMessages() async throws {
        let harness = try BotHarness()
        let paragraph = String(repeating: "Lorem ipsum dolor sit amet. ", count: 40)  // 1120 characters
        let answer = (0..<12).map { _ in paragraph }.joined(separator: "\n\n")
        harness.llm.enqueue(.answer(answer, chunkSize: 2000))
        try await harness.withBot { _ in
            harness.telegram.deliverText("write a lot", chatID: 503)
            try await harness.eventually("every part") { harness.replyRecords.count == 1 }
        }
        let texts = harness.texts(503)
        #expect(texts.count >= 4)
        #expect(texts.allSatisfy { $0.unicodeScalars.count <= 4096 })
        let squeeze: (String) -> String = { $0.filter { !$0.isWhitespace } }
        #expect(squeeze(texts.joined()) == squeeze(answer))
        #expect(harness.telegram.tooManyRequests == 0)
    }

    @Test func markdownWithEmojiAndUnbalancedMarkupArrivesIntact() async throws {
        let harness = try BotHarness()
        let answer = "👋🏽 **Hi** there, `code` and a lone * star and **unclosed\n```swift\nlet x = 1\n```"
        harness.llm.enqueue(.answer(answer))
        try await harness.withBot { _ in
            harness.telegram.deliverText("format", chatID: 504)
            try await harness.eventually("the answer") { harness.replyRecords.count == 1 }
        }
        let message = try #require(harness.telegram.visibleMessages(chatID: 504).first)
        let expected = MarkdownRenderer.render(answer)
        #expect(message.text == expected.text)
        #expect(message.text.contains("lone * star and **unclosed"))
        #expect(message.entities.map(\.type) == ["bold", "code", "pre"])
        #expect(message.entities.first?.offset == 5)
    }

    @Test func entitiesTelegramRejectsAreResentAsPlainText() async throws {
        let harness = try BotHarness()
        harness.llm.enqueue(.answer("**bold** words"))
        harness.telegram.failNext("sendMessage", status: 400, description: "Bad Request: can't parse entities: unsupported start tag")
        try await harness.withBot { _ in
            harness.telegram.deliverText("x", chatID: 505)
            try await harness.eventually("the answer") { harness.texts(505).count == 1 }
        }
        let message = try #require(harness.telegram.visibleMessages(chatID: 505).first)
        #expect(message.text == "bold words")
        #expect(message.entities.isEmpty)
    }

    @Test func theStopButtonEndsTheModelCallAndKeepsThePartialAnswer() async throws {
        let harness = try BotHarness()
        harness.llm.enqueue(.stall(after: "I was saying "))
        try await harness.withBot { _ in
            harness.telegram.deliverText("talk", chatID: 506)
            try await harness.eventually("a draft") { !harness.telegram.drafts(chatID: 506).isEmpty }
            let draftID = try #require(harness.telegram.calls("sendMessageDraft").first?.parameters["draft_id"]?.int64)
            harness.telegram.deliverStop(chatID: 506, draftID: draftID)
            try await harness.eventually("the stopped answer") { harness.texts(506).count == 1 }
        }
        #expect(harness.texts(506) == ["I was saying\n\n(interrupted)"])
        try await harness.eventually("the model connection closed") { harness.llm.clientDisconnects == 1 }
        let conversation = try await harness.store.conversation(kind: "telegram", externalID: 506)
        #expect(try await harness.store.allMessages(conversationID: conversation.id).map(\.status) == [.complete, .partial])
    }

    @Test func twoHundredChatsAtOnceAllGetCompleteAnswersWithoutA429() async throws {
        let harness = try BotHarness()
        let chats = (1...Int(ProcessInfo.processInfo.environment["CHATS"] ?? "200")!).map { Int64(10_000 + $0) }
        try await harness.withBot { _ in
            for chat in chats { harness.telegram.deliverText("question from \(chat)", chatID: chat) }
            try await harness.eventually("200 answers", timeout: .seconds(60)) { harness.replyRecords.count == chats.count }
        }
        for chat in chats {
            #expect(harness.texts(chat) == ["Echo: question from \(chat)"])
        }
        #expect(harness.telegram.tooManyRequests == 0)
    }

    @Test func aChatIsAnsweredInOrderAndAFullQueueSaysSo() async throws {
        let harness = try BotHarness()
        harness.llm.enqueue(.answer("first answer, slowly", chunkSize: 30, pause: .milliseconds(40)))
        try await harness.withBot { _ in
            for index in 1...6 { harness.telegram.deliverText("m\(index)", chatID: 610, messageID: index) }
            try await harness.eventually("five messages back") { harness.texts(610).count == 5 }
            try await harness.eventually("all handled") { await harness.store.openUpdatesCount == 0 }
        }
        let texts = harness.texts(610)
        let answers = texts.filter { !$0.hasPrefix("I'm still answering") }
        #expect(answers.count == 4)
        #expect(Array(answers.prefix(3)) == ["first answer, slowly", "Echo: m2", "Echo: m3"])
        #expect(texts.filter { $0.hasPrefix("I'm still answering") }.count == 1, "one notice per busy period")
        // Strictly in the order sent (which of m4…m6 overflowed depends on how polls batch them).
        let asked = harness.llm.chatRequests.compactMap { $0.messages.last?.content.dropFirst() }.compactMap { Int($0) }
        #expect(asked.count == 4)
        #expect(asked == asked.sorted())
    }

    @Test func accessIsLimitedToAllowedUsersWithOneRefusal() async throws {
        let harness = try BotHarness(overrides: ["ALLOWED_USER_IDS": "42"])
        try await harness.withBot { _ in
            harness.telegram.deliverText("let me in", chatID: 600)
            harness.telegram.deliverText("please", chatID: 600, messageID: 2)
            harness.telegram.deliverText("hello", chatID: 42)
            try await harness.eventually("the allowed answer") { harness.texts(42).count == 1 }
            try await harness.eventually("both handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.texts(600) == ["Sorry, this bot is private."])
        #expect(harness.llm.chatRequests.count == 1)
    }

    @Test func botsAreIgnoredAndNonTextGetsAShortAnswer() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliverText("beep", chatID: 602, isBot: true)
            harness.telegram.addChat(603, type: "private")
            harness.telegram.deliver(
                updateJSON: #""message":{"message_id":5,"date":1,"chat":{"id":603,"type":"private"},"from":{"id":603,"is_bot":false,"first_name":"U"},"sticker":{"file_id":"s","file_unique_id":"s","width":512,"height":512,"is_animated":false,"is_video":false,"type":"regular"}}"#)
            try await harness.eventually("the sticker answer") { harness.texts(603).count == 1 }
            try await harness.eventually("both handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.texts(603) == [TurnReader.unsupported])
        #expect(harness.texts(602).isEmpty)
        #expect(harness.llm.chatRequests.isEmpty)
    }

    @Test func everyCommandWorks() async throws {
        let harness = try BotHarness(overrides: ["ALLOWED_MODELS": "small-model", "ADMIN_USER_IDS": "700", "INPUT_PRICE_PER_MILLION": "1"])
        let chat: Int64 = 700
        var step = 0
        func send(_ text: String) async throws {
            step += 1
            harness.telegram.deliverText(text, chatID: chat, messageID: step)
            try await harness.eventually(text) { harness.texts(chat).count == step }
        }
        try await harness.withBot { _ in
            try await send("/start deep-link-payload")
            try await send("hello")
            try await send("/stats")
            try await send("/model")
            try await send("/model unknown-model")
            try await send("/model small-model")
            try await send("again")
            try await send("/clear")
            try await send("/stats")
        }
        let texts = harness.texts(chat)
        #expect(texts[0].contains("/clear"))
        #expect(texts[1] == "Echo: hello")
        #expect(texts[2].contains("Messages in memory: 2"))
        #expect(texts[2].contains("Estimated cost: $0.0000"))
        #expect(texts[2].contains("All chats: 1 chats"), "admins see totals in private")
        #expect(texts[3].contains("Model: test-model"))
        #expect(texts[4].contains("not allowed") && texts[4].contains("small-model"))
        #expect(texts[5] == "Model switched to small-model for this chat.")
        #expect(harness.llm.chatRequests.last?.model == "small-model")
        #expect(texts[7].hasPrefix("History cleared"))
        #expect(texts[8].contains("Messages in memory: 0"))
        #expect(harness.telegram.registeredCommands.count == 5)
    }

    /// Bot-wide totals are for the admin's eyes: never posted into a group, even at an admin's /stats.
    @Test func anAdminsStatsInAGroupShowOnlyThatGroup() async throws {
        let harness = try BotHarness(overrides: ["ADMIN_USER_IDS": "1"])
        let group: Int64 = -100_901
        try await harness.withBot { _ in
            harness.telegram.deliverText("/stats", chatID: group, chatType: "group", userID: 1, messageID: 1)
            try await harness.eventually("the stats") { harness.texts(group).count == 1 }
        }
        #expect(harness.texts(group).first?.contains("Messages in memory:") == true)
        #expect(harness.texts(group).first?.contains("All chats") == false)
    }

    @Test func onlyAdminsSwitchModelsInGroups() async throws {
        let harness = try BotHarness(overrides: ["ALLOWED_MODELS": "small-model", "ADMIN_USER_IDS": "1"])
        let group: Int64 = -100900
        try await harness.withBot { _ in
            harness.telegram.deliverText("/model small-model", chatID: group, chatType: "group", userID: 2, messageID: 1)
            try await harness.eventually("the refusal") { harness.texts(group).count == 1 }
            harness.telegram.deliverText("/model small-model", chatID: group, chatType: "group", userID: 1, messageID: 2)
            try await harness.eventually("the switch") { harness.texts(group).count == 2 }
        }
        #expect(harness.texts(group)[0].contains("Only the bot's admins"))
        #expect(harness.texts(group)[1].contains("switched"))
    }

    @Test func aBlockedChatIsSkippedAndOthersAreServed() async throws {
        let harness = try BotHarness()
        harness.telegram.addChat(800, type: "private")
        harness.telegram.block(chatID: 800)
        try await harness.withBot { _ in
            harness.telegram.deliverText("hi", chatID: 800)
            harness.telegram.block(chatID: 800)
            harness.telegram.deliverText("hi", chatID: 801)
            try await harness.eventually("the other chat") { harness.texts(801).count == 1 }
            try await harness.eventually("both handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.texts(800).isEmpty)
        #expect(harness.log.records.contains { ($0["error_type"] as? String) == "telegram_forbidden" })
    }

    @Test func anUpgradedGroupKeepsItsHistoryUnderTheNewID() async throws {
        let harness = try BotHarness()
        let old: Int64 = -555
        let new: Int64 = -100555
        try await harness.withBot { _ in
            harness.telegram.deliverText("@test_assistant_bot remember kiwi", chatID: old, chatType: "group", userID: 1, messageID: 1)
            try await harness.eventually("the first answer") { harness.replyRecords.count == 1 }
            // Telegram's service message in the old group, then messages come from the new id.
            harness.telegram.migrate(chatID: old, to: new)
            harness.telegram.deliverMigration(from: old, to: new)
            harness.telegram.deliverText("@test_assistant_bot what fruit?", chatID: new, chatType: "supergroup", userID: 1, messageID: 2)
            try await harness.eventually("the answer in the supergroup") { harness.texts(new).count == 1 }
        }
        let last = try #require(harness.llm.chatRequests.last)
        #expect(last.messages.contains { $0.content == "remember kiwi" })
        let conversation = try await harness.store.conversation(kind: "telegram", externalID: new)
        #expect(try await harness.store.messageCount(conversationID: conversation.id) == 4)
    }

    @Test func aGroupUpgradedInTheMiddleOfAReplyStillGetsTheAnswer() async throws {
        let harness = try BotHarness()
        let old: Int64 = -556
        let new: Int64 = -100556
        // The model takes a while; meanwhile the group becomes a supergroup.
        harness.llm.enqueue(.answer(String(repeating: "slow ", count: 40), chunkSize: 80, pause: .milliseconds(20)))
        try await harness.withBot { _ in
            harness.telegram.deliverText("@test_assistant_bot go", chatID: old, chatType: "group", userID: 1, messageID: 1)
            try await harness.eventually("the first streamed text") { harness.texts(old).count == 1 }
            harness.telegram.migrate(chatID: old, to: new)
            try await harness.eventually("the answer") { harness.replyRecords.count == 1 }
        }
        #expect(harness.texts(new) == [String(repeating: "slow ", count: 40).trimmingCharacters(in: .whitespaces)])
        let conversation = try await harness.store.conversation(kind: "telegram", externalID: new)
        #expect(try await harness.store.messageCount(conversationID: conversation.id) == 2)
    }

    @Test func aRestartNeverAnswersTwiceNorLosesAnUpdate() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/bot.sqlite"
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        do {
            let first = try BotHarness(telegram: telegram, store: try SQLiteStore(path: path))
            try await first.withBot { _ in
                telegram.deliverText("one", chatID: 900)
                try await first.eventually("the first answer") { first.texts(900).count == 1 }
            }
        }
        // Updates that arrive while the bot is down, and one whose reply a crash cut off.
        telegram.deliverText("two", chatID: 900, messageID: 2)
        telegram.addChat(901, type: "private")
        let crashed = try SQLiteStore(path: path)
        let cut = Telegram.Update(
            update_id: 999,  // below the fake's ids, as a real earlier update would be
            message: Telegram.Message(message_id: 3, from: .init(id: 901, is_bot: false, first_name: "U"), chat: .init(id: 901, type: "private"), date: 1, text: "three"))
        _ = try await crashed.saveReceived([UpdateIntake.row(cut)])
        try await crashed.setUpdateStatus(999, .answering)

        let second = try BotHarness(telegram: telegram, store: try SQLiteStore(path: path))
        try await second.withBot { _ in
            try await second.eventually("the second answer") { telegram.visibleMessages(chatID: 900).count == 2 }
            try await second.eventually("the restart notice") { telegram.visibleMessages(chatID: 901).count == 1 }
            try await second.eventually("everything handled") { await second.store.openUpdatesCount == 0 }
        }
        #expect(telegram.visibleMessages(chatID: 900).map(\.text) == ["Echo: one", "Echo: two"])
        #expect(telegram.visibleMessages(chatID: 901).map(\.text) == ["I was restarted while answering your message. Please send it again."])
        #expect(second.llm.chatRequests.count == 1, "only the new update reached the model")
    }

    @Test func aLockedDatabaseHoldsUpdatesBackUntilItIsFreeAndLosesNone() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/bot.sqlite"
        let harness = try BotHarness(store: try SQLiteStore(path: path, busyTimeout: 0.05))
        let holder = try WriteLockHolder(path: path)
        try await harness.withBot { _ in
            harness.telegram.deliverText("held", chatID: 960)
            try await harness.eventually("a poll that could not save") {
                harness.log.records.contains {
                    $0["msg"] as? String == "poll_failed" && ($0["error"] as? String)?.contains("is locked by another process") == true
                }
            }
            #expect(harness.texts(960).isEmpty, "nothing is answered that could not be saved")
            holder.release()
            try await harness.eventually("the answer once the lock is gone") { harness.replyRecords.count == 1 }
        }
        #expect(harness.texts(960) == ["Echo: held"])
        #expect(harness.llm.chatRequests.count == 1)
        #expect(await harness.store.openUpdatesCount == 0)
    }

    @Test func aRejectedTokenStopsTheStartWithAClearMessage() async throws {
        let telegram = try FakeTelegramServer()
        let harness = try BotHarness(telegram: telegram, overrides: ["TELEGRAM_BOT_TOKEN": "999999:WRONG-token-but-well-formed-xx"])
        await #expect {
            _ = try await harness.connect()
        } throws: { "\($0)" == "TELEGRAM_BOT_TOKEN was rejected by Telegram (check the token from @BotFather)" }
    }

    @Test func aSecondInstanceIsLoggedAsAConflict() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            // Another poller with the same token keeps taking over.
            let intruder = BotAPIClient(baseURL: harness.telegram.baseURL, token: Secret(harness.telegram.token), http: HTTPClient())
            try await harness.eventually("our poll") { harness.telegram.pollsReceived >= 1 }
            _ = try? await intruder.getUpdates(offset: nil, timeout: 1)
            try await harness.eventually("the conflict log") { harness.log.records.contains { $0["msg"] as? String == "poll_conflict" } }
        }
    }
}

extension Store {
    /// Updates not yet handled.
    var openUpdatesCount: Int {
        get async { (try? await openUpdates().count) ?? -1 }
    }
}
