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

/// What a message costs is decided before it is queued: strangers, floods and group chatter never
/// hold up anyone else's answers.
@Suite(.timeLimit(.minutes(2))) struct IntakeTests {
    /// A stranger forwards 30 messages at once: one notice, nothing queued, and the allowed user's
    /// answer is not held up behind a pile of notices.
    @Test func aStrangerWhoFloodsGetsOneNoticeAndNothingElse() async throws {
        let harness = try BotHarness(overrides: ["ALLOWED_USER_IDS": "42"])
        try await harness.withBot { _ in
            for index in 1...30 { harness.telegram.deliverText("forward \(index)", chatID: 700, messageID: index) }
            harness.telegram.deliverText("hello", chatID: 42)
            try await harness.eventually("the allowed answer") { harness.texts(42) == ["Echo: hello"] }
            try await harness.eventually("all handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.texts(700) == [AccessPolicy.privateBot])
        #expect(harness.telegram.calls("sendMessage").filter { $0.parameters["chat_id"]?.int64 == 700 }.count == 1)
        #expect(harness.llm.chatRequests.count == 1)
    }

    /// Over the rate limit, commands included: one notice per period, not one per message.
    @Test func aRateLimitedUserGetsOneNoticeCommandsIncluded() async throws {
        let harness = try BotHarness(overrides: ["USER_RATE_LIMIT_PER_MINUTE": "2"])
        try await harness.withBot { _ in
            harness.telegram.deliverText("one", chatID: 701, messageID: 1)
            harness.telegram.deliverText("two", chatID: 701, messageID: 2)
            for index in 3...6 { harness.telegram.deliverText(index.isMultiple(of: 2) ? "/help" : "more \(index)", chatID: 701, messageID: index) }
            try await harness.eventually("all handled") { await harness.store.openUpdatesCount == 0 && harness.telegram.pendingUpdateCount == 0 }
            try await harness.eventually("two answers and a notice") { harness.texts(701).count == 3 }
        }
        // The notice goes at once, while the accepted messages are still being answered.
        let texts = harness.texts(701)
        #expect(texts.filter { $0.hasPrefix("Echo: ") } == ["Echo: one", "Echo: two"])
        #expect(texts.filter { $0.hasPrefix("You're sending messages too fast.") }.count == 1)
        #expect(harness.llm.chatRequests.count == 2)
    }

    /// A chat that writes faster than it is answered: the first skipped message gets one notice that
    /// quotes it; the others skipped in the same busy period get none.
    @Test func anOverflowNoticeQuotesTheSkippedMessageOncePerBusyPeriod() async throws {
        let harness = try BotHarness(overrides: ["USER_RATE_LIMIT_PER_MINUTE": "100"])
        harness.llm.enqueue(.answer("a slow first answer", chunkSize: 20, pause: .milliseconds(150)))
        try await harness.withBot { _ in
            harness.telegram.deliverText("m1", chatID: 702, messageID: 1)
            try await harness.eventually("the first at the model") { harness.llm.chatRequests.count == 1 }
            for index in 2...8 { harness.telegram.deliverText("m\(index)", chatID: 702, messageID: index) }
            try await harness.eventually("all handled") { await harness.store.openUpdatesCount == 0 && harness.telegram.pendingUpdateCount == 0 }
        }
        let messages = harness.telegram.visibleMessages(chatID: 702)
        let notices = messages.filter { $0.text == ChatDispatcher.overflowNotice }
        #expect(notices.count == 1, "\(messages.map(\.text))")
        #expect(notices.first?.replyTo == 5, "it quotes the first message that was skipped")
        #expect(messages.map(\.text).filter { $0.hasPrefix("Echo: ") || $0 == "a slow first answer" }
            == ["a slow first answer", "Echo: m2", "Echo: m3", "Echo: m4"])
    }

    @Test func aGroupMessageThatIsOnlyTheMentionGetsAHintAndNoModelCall() async throws {
        let harness = try BotHarness()
        let group: Int64 = -100_703
        try await harness.withBot { _ in
            harness.telegram.deliverText("@test_assistant_bot", chatID: group, chatType: "supergroup", userID: 1, messageID: 1)
            try await harness.eventually("the hint") { harness.texts(group).count == 1 }
            try await harness.eventually("handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.texts(group) == [AccessPolicy.mentionHint("test_assistant_bot")])
        #expect(harness.llm.chatRequests.isEmpty)
    }

    /// `@test_assistant_bot_fan` is someone else; a mention in the middle is taken out cleanly; a
    /// caption that mentions the bot addresses it too.
    @Test func mentionsAreTelegramsEntitiesNotSubstrings() async throws {
        let harness = try BotHarness()
        let group: Int64 = -100_704
        try await harness.withBot { _ in
            harness.telegram.deliverText("@test_assistant_bot_fan what do you think?", chatID: group, chatType: "supergroup", userID: 1, messageID: 1)
            harness.telegram.deliverText("hey @Test_Assistant_Bot what's up", chatID: group, chatType: "supergroup", userID: 1, messageID: 2)
            harness.telegram.deliverPhoto(chatID: group, userID: 1, chatType: "supergroup", caption: "@test_assistant_bot what is this?", messageID: 3)
            try await harness.eventually("two replies") { harness.texts(group).count == 2 }
            try await harness.eventually("handled") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.llm.chatRequests.map { $0.messages.last?.content } == ["hey what's up", "what is this?"])
        #expect(harness.llm.chatRequests.last?.messages.last?.images.count == 1, "the photo goes with its caption")
        #expect(harness.texts(group) == ["Echo: hey what's up", "Echo: what is this?"])
        #expect(harness.telegram.visibleMessages(chatID: group).last?.replyTo == 3)
    }

    @Test func theRateLimiterIsBounded() {
        let limiter = UserRateLimiter(perMinute: 5, clock: RecordingClock(), capacity: 1_000)
        for person in 0..<5_000 { #expect(limiter.admit(Int64(person)) == nil) }
        #expect(limiter.count <= 1_000)
    }

    @Test func theNoticeMemoryIsBounded() {
        let memory = NoticeMemory(period: .seconds(60), capacity: 100, clock: ContinuousClock())
        for person in 0..<1_000 { #expect(memory.shouldTell(Int64(person))) }
        #expect(memory.count <= 100)
        #expect(!memory.shouldTell(999), "the most recent are remembered")
    }

    @Test func mentionsAreRemovedByTheirUTF16Bounds() throws {
        let text = "👋🏽 @helper_bot, ünïcode @helper_bot!"
        let units = Array(text.utf16)
        let at = units.indices.filter { units[$0] == 0x40 }
        let message = Telegram.Message(
            message_id: 1, from: nil, chat: .init(id: -1, type: "group"), date: 1, text: text,
            entities: at.map { Telegram.MessageEntity(type: "mention", offset: $0, length: 11) })
        #expect(message.mentions("HELPER_bot"))
        #expect(!message.mentions("helper"))
        #expect(message.text(withoutMentionsOf: "helper_bot") == "👋🏽 , ünïcode !")
        // Entities that point outside the text (hostile input) are ignored, never a crash.
        let hostile = Telegram.Message(
            message_id: 1, from: nil, chat: .init(id: -1, type: "group"), date: 1, text: "hi",
            entities: [.init(type: "mention", offset: 1, length: 50), .init(type: "mention", offset: -3, length: 2)])
        #expect(!hostile.mentions("x"))
        #expect(hostile.text(withoutMentionsOf: "x") == "hi")
    }
}
