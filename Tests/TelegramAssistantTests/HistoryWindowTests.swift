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

@Suite(.timeLimit(.minutes(2))) struct HistoryWindowTests {
    let system = [OpenAI.Message(role: .system, content: "You are terse.")]

    /// A random history ending with a user turn, like the engine's (the new turn is saved first).
    func randomHistory(_ generator: inout SplitMix, count: Int) -> [HistoryWindow.Turn] {
        var turns: [HistoryWindow.Turn] = []
        var id: Int64 = Int64(generator.next() % 5) + 1
        for index in 0..<count {
            // Mostly alternating, sometimes two user turns in a row (a failed reply was left out).
            let role: OpenAI.Role = index == count - 1 ? .user : (generator.next() % 5 == 0 ? .user : (index % 2 == 0 ? .user : .assistant))
            let length = Int(generator.next() % 400)
            let content = String(repeating: generator.next() % 3 == 0 ? "日本 " : "word ", count: length / 5 + 1)
            turns.append(.init(id: id, role: role, content: content))
            id += Int64(generator.next() % 3) + 1
        }
        return turns
    }

    func tokens(_ turns: [HistoryWindow.Turn]) -> Int {
        TokenEstimator.estimate(system + turns.map { OpenAI.Message(role: $0.role, content: $0.content) })
    }

    @Test func anyHistoryBecomesARequestWithinBudgetThatStartsWithTheUser() {
        var generator = SplitMix(seed: 7)
        for _ in 0..<500 {
            let maxMessages = Int(generator.next() % 30) + 1
            let budget = Int(generator.next() % 4000) + 400
            let history = randomHistory(&generator, count: Int(generator.next() % 60) + 1)
            let window = HistoryWindow(maxMessages: maxMessages, tokenBudget: budget)
            guard let plan = window.plan(system: system, turns: history, windowStartID: 0) else {
                // Only when the newest turn alone cannot fit.
                #expect(tokens([history.last!]) > budget)
                continue
            }
            #expect(tokens(plan.turns) <= budget)
            #expect(plan.turns.count <= maxMessages)
            #expect(plan.turns.first?.role == .user)
            #expect(plan.turns.last == history.last, "the new message is always sent")
            #expect(plan.windowStartID == plan.turns.first?.id)
            // The window is a contiguous tail of the history.
            #expect(Array(history.suffix(plan.turns.count)) == plan.turns)
        }
    }

    @Test func consecutiveRequestsShareTheirPrefixUntilABlockIsDropped() {
        var generator = SplitMix(seed: 99)
        for _ in 0..<50 {
            let window = HistoryWindow(maxMessages: Int(generator.next() % 16) + 4, tokenBudget: Int(generator.next() % 3000) + 1500)
            var history: [HistoryWindow.Turn] = []
            var windowStart: Int64 = 0
            var previous: [HistoryWindow.Turn] = []
            var trims = 0
            for id in 1...80 {
                let role: OpenAI.Role = id % 2 == 1 ? .user : .assistant
                history.append(.init(id: Int64(id), role: role, content: String(repeating: "token ", count: Int(generator.next() % 120) + 1)))
                guard role == .user, let plan = window.plan(system: system, turns: history, windowStartID: windowStart) else { continue }
                if plan.windowStartID == windowStart {
                    // No trim: the previous request is a prefix of this one (prompt caching hits).
                    #expect(Array(plan.turns.prefix(previous.count)) == previous)
                } else {
                    trims += 1
                    #expect(plan.windowStartID > windowStart, "the window only moves forward")
                    // Block trimming: at least half of the window is dropped at once, not one message.
                    let candidates = history.filter { $0.id >= windowStart }.count
                    let dropped = history.filter { $0.id >= windowStart && $0.id < plan.windowStartID }.count
                    #expect(dropped >= candidates / 2)
                }
                windowStart = plan.windowStartID
                previous = plan.turns
            }
            #expect(trims > 0, "the history outgrows the window")
        }
    }

    @Test func dropsTheOldestHalfAtOnce() throws {
        let turns = (1...21).map { HistoryWindow.Turn(id: Int64($0), role: $0 % 2 == 1 ? .user : .assistant, content: "x") }
        let plan = try #require(HistoryWindow(maxMessages: 20, tokenBudget: 10_000).plan(system: system, turns: turns, windowStartID: 0))
        // 21 > 20: drop 10, then the assistant turn that would lead: 11 → window opens at 11... ids 11..21.
        #expect(plan.turns.count == 11)
        #expect(plan.windowStartID == 11)
    }

    @Test func dropExtraBlockTrimsHarderForTheContextRetry() throws {
        let turns = (1...9).map { HistoryWindow.Turn(id: Int64($0), role: $0 % 2 == 1 ? .user : .assistant, content: "x") }
        let window = HistoryWindow(maxMessages: 20, tokenBudget: 10_000)
        let normal = try #require(window.plan(system: system, turns: turns, windowStartID: 0))
        let harder = try #require(window.plan(system: system, turns: turns, windowStartID: 0, dropExtraBlock: true))
        #expect(normal.turns.count == 9)
        #expect(harder.turns.count < normal.turns.count)
        #expect(harder.turns.first?.role == .user)
    }

    @Test func aMessageTooLongForTheBudgetGivesNoPlan() {
        let turns = [HistoryWindow.Turn(id: 1, role: .user, content: String(repeating: "long ", count: 2000))]
        #expect(HistoryWindow(maxMessages: 20, tokenBudget: 500).plan(system: system, turns: turns, windowStartID: 0) == nil)
    }

    @Test func neverStartsWithAnAssistantTurnEvenWithoutTrimming() throws {
        let turns = [
            HistoryWindow.Turn(id: 4, role: .assistant, content: "leftover"), HistoryWindow.Turn(id: 5, role: .user, content: "hi"),
        ]
        let plan = try #require(HistoryWindow(maxMessages: 20, tokenBudget: 1000).plan(system: system, turns: turns, windowStartID: 0))
        #expect(plan.turns.map(\.id) == [5])
    }
}
