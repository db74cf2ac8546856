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

/// Long polling that survives what Telegram really does: ids that start again lower, update shapes
/// this version has never seen.
@Suite(.timeLimit(.minutes(2))) struct PollingFaultTests {
    /// After a week without updates the next `update_id` is random and can be lower than our offset.
    /// The offset must follow the ids Telegram returns, or the bot polls the same head forever.
    @Test func updateIDsThatStartAgainLowerAreAnsweredAndConfirmed() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliverText("before the pause", chatID: 71)
            try await harness.eventually("the first answer") { harness.texts(71).count == 1 }
            harness.telegram.restartUpdateIDs(at: 7)
            harness.telegram.deliverText("after the pause", chatID: 71, messageID: 2)
            harness.telegram.deliverText("and again", chatID: 71, messageID: 3)
            try await harness.eventually("both answers") { harness.texts(71).count == 3 }
            try await harness.eventually("the queue confirmed") { harness.telegram.pendingUpdateCount == 0 }
            // Normal polling afterwards: an idle bot long-polls, it does not spin.
            let polls = harness.telegram.pollsReceived
            harness.telegram.deliverText("later still", chatID: 71, messageID: 4)
            try await harness.eventually("the later answer") { harness.texts(71).count == 4 }
            #expect(harness.telegram.pollsReceived - polls < 10, "polls: \(harness.telegram.pollsReceived - polls)")
        }
        #expect(harness.texts(71) == ["Echo: before the pause", "Echo: after the pause", "Echo: and again", "Echo: later still"])
        #expect(harness.llm.chatRequests.count == 4)
    }

    /// The new ids may climb through ids the bot has already handled; those updates are still new.
    @Test func aNewUpdateThatReusesAnOldIDIsNotMistakenForTheOld() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            let first = harness.telegram.deliverText("first", chatID: 72)
            try await harness.eventually("the first answer") { harness.texts(72).count == 1 }
            try await harness.eventually("the first update handled") { await harness.store.openUpdatesCount == 0 }
            harness.telegram.restartUpdateIDs(at: first - 2)
            for (index, text) in ["second", "third", "fourth"].enumerated() {
                harness.telegram.deliverText(text, chatID: 72, messageID: index + 2)
                try await harness.eventually("the answer to \(text)") { harness.texts(72).count == index + 2 }
            }
        }
        #expect(harness.texts(72) == ["Echo: first", "Echo: second", "Echo: third", "Echo: fourth"])
    }

    /// A shape the decoder does not know must cost that one update, never the batch: it is logged
    /// with its id and the failing field (never its text), confirmed, and the others are answered.
    @Test func anUndecodableUpdateIsLoggedConfirmedAndSkipped() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliverText("one", chatID: 73, messageID: 1)
            let odd = harness.telegram.deliver(
                updateJSON:
                    #""message":{"message_id":2,"date":1700000000,"chat":{"id":73,"type":"private"},"from":{"id":73,"is_bot":false,"first_name":"U"},"text":"secret words","entities":{"surprise":true}}"#)
            harness.telegram.deliverText("three", chatID: 73, messageID: 3)
            try await harness.eventually("two answers") { harness.texts(73).count == 2 }
            try await harness.eventually("the queue confirmed") { harness.telegram.pendingUpdateCount == 0 }
            let record = try #require(harness.log.records.first { $0["msg"] as? String == "update_undecodable" })
            #expect(record["update_id"] as? Int == Int(odd))
            #expect(record["field"] as? String == "message.entities")
        }
        #expect(harness.texts(73) == ["Echo: one", "Echo: three"])
        #expect(!harness.log.text.contains("secret words"))
        #expect(!harness.log.records.contains { $0["msg"] as? String == "poll_failed" })
    }

    @Test func eachUpdateOfABatchIsDecodedOnItsOwn() throws {
        let body = #"""
            {"ok":true,"result":[
              {"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":5,"type":"private"},"text":"a"}},
              {"update_id":2,"message":{"message_id":"two","date":1,"chat":{"id":5,"type":"private"}}},
              {"update_id":3,"brand_new_kind":{"x":1}},
              "not even an object",
              {"update_id":4,"message":{"message_id":4,"date":1,"chat":{"id":5,"type":"private"},"text":"d","entities":[{"type":"future_entity","offset":0,"length":1}]}}
            ]}
            """#
        let envelope = try JSONDecoder().decode(Telegram.Envelope<[Telegram.PolledUpdate]>.self, from: Data(body.utf8))
        let polled = try #require(envelope.result)
        #expect(polled.count == 5)
        #expect(polled.map(\.updateID) == [1, 2, 3, nil, 4])
        guard case .undecodable(let id, let field, _) = polled[1] else {
            Issue.record("the second update should not decode")
            return
        }
        #expect(id == 2 && field == "message.message_id")
        if case .update(let update) = polled[2] { #expect(update.message == nil) } else { Issue.record("an unknown kind is an update without a message") }
        if case .update(let update) = polled[4] { #expect(update.message?.text == "d") } else { Issue.record("an unknown entity type is kept") }
    }
}
