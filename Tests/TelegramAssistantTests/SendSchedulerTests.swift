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

@Suite(.timeLimit(.minutes(2))) struct SendSchedulerTests {
    /// Acquires finals and records the virtual time each was granted.
    final class Timeline: Sendable {
        private let entries = Mutex<[(chat: Int64, at: Duration)]>([])
        func add(_ chat: Int64, _ at: Duration) { entries.withLock { $0.append((chat, at)) } }
        var all: [(chat: Int64, at: Duration)] { entries.withLock { $0 }.sorted { $0.at < $1.at } }

        /// The most calls in any window of `length`.
        func busiest(window length: Duration, chat: Int64? = nil) -> Int {
            let times = all.filter { chat == nil || $0.chat == chat }.map(\.at)
            var best = 0
            for (index, start) in times.enumerated() {
                best = max(best, times[index...].prefix { $0 - start < length }.count)
            }
            return best
        }
    }

    /// One final to each of `chats` at once, each through `scheduler(chat)`; when each was let go.
    static func acquireFinals(
        chats: ClosedRange<Int64>, clock: RecordingClock, _ scheduler: @escaping @Sendable (Int64) -> SendScheduler
    ) async throws -> Timeline {
        let timeline = Timeline()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chat in chats {
                group.addTask {
                    try await scheduler(chat).acquireFinal(chat: chat, isGroup: false)
                    timeline.add(chat, clock.now.offset)
                    await scheduler(chat).finished()
                }
            }
            try await group.waitForAll()
        }
        return timeline
    }

    @Test func finalsToOneChatAreSpacedOneSecondApart() async throws {
        let clock = RecordingClock()
        let scheduler = SendScheduler(clock: clock)
        let timeline = Timeline()
        for _ in 0..<5 {
            try await scheduler.acquireFinal(chat: 1, isGroup: false)
            timeline.add(1, clock.now.offset)
            await scheduler.finished()
        }
        #expect(timeline.all.map(\.at) == [.zero, .seconds(1), .seconds(2), .seconds(3), .seconds(4)])
    }

    @Test func aGroupGetsAtMostTwentyPerMinute() async throws {
        let clock = RecordingClock()
        let scheduler = SendScheduler(clock: clock)
        let timeline = Timeline()
        for _ in 0..<45 {
            try await scheduler.acquireFinal(chat: -100, isGroup: true)
            timeline.add(-100, clock.now.offset)
            await scheduler.finished()
        }
        #expect(timeline.busiest(window: .seconds(60)) <= 20)
        #expect(timeline.busiest(window: .seconds(1)) == 1)
    }

    @Test func twoHundredFinalsStayWithinTheGlobalBudget() async throws {
        let clock = RecordingClock()
        let scheduler = SendScheduler(clock: clock)
        let timeline = try await Self.acquireFinals(chats: Int64(1)...200, clock: clock) { _ in scheduler }
        #expect(timeline.all.count == 200)
        #expect(timeline.busiest(window: .seconds(1)) <= 32)  // a burst of 5, then 27 per second
        let last = try #require(timeline.all.last?.at)
        #expect(last < .seconds(8))
    }

    /// Three replicas of one bot each keep a third of the global budget: together they stay
    /// within Telegram's 30 a second.
    @Test func replicasShareTheGlobalBudget() async throws {
        let clock = RecordingClock()
        let schedulers = [SendScheduler(clock: clock), SendScheduler(clock: clock), SendScheduler(clock: clock)]
        for scheduler in schedulers { await scheduler.shareGlobalBudget(among: 3) }
        let timeline = try await Self.acquireFinals(chats: Int64(1)...300, clock: clock) { schedulers[Int($0) % 3] }
        #expect(timeline.all.count == 300)
        #expect(timeline.busiest(window: .seconds(1)) <= 30, "a burst of 5 split three ways, then 27 a second in all")
        // Back to one replica: the whole budget again, what was spent still spent.
        await schedulers[0].shareGlobalBudget(among: 1)
        let start = clock.now.offset
        let alone = Timeline()
        for chat in Int64(1_001)...1_054 {
            try await schedulers[0].acquireFinal(chat: chat, isGroup: false)
            alone.add(chat, clock.now.offset - start)
            await schedulers[0].finished()
        }
        #expect(alone.busiest(window: .seconds(1)) <= 32 && alone.busiest(window: .seconds(1)) >= 27, "the whole budget: \(alone.busiest(window: .seconds(1)))")
    }

    /// A replica's share still lets drafts through when it is idle (they wait for headroom).
    @Test func aShareOfTheBudgetStillShowsDrafts() async throws {
        let clock = RecordingClock()
        let scheduler = SendScheduler(clock: clock)
        await scheduler.shareGlobalBudget(among: 5)
        #expect(await scheduler.tryAcquireIntermediate(chat: 1, isGroup: false))
        await scheduler.finished()
        try await clock.sleep(for: .seconds(1))
        #expect(await scheduler.tryAcquireIntermediate(chat: 2, isGroup: false), "refilled")
    }

    /// Calls let go but not answered are capped: when Telegram or the network stalls, calls let go
    /// on time cannot pile up and arrive all at once.
    @Test func callsInFlightAreCapped() async throws {
        let scheduler = SendScheduler(clock: ContinuousClock())  // real time: the ninth must really wait
        for chat in Int64(1)...8 { try await scheduler.acquireFinal(chat: chat, isGroup: false) }
        #expect(await scheduler.callsInFlight == 8)
        #expect(await scheduler.tryAcquireIntermediate(chat: 20, isGroup: false) == false)
        let ninth = Task { try await scheduler.acquireFinal(chat: 9, isGroup: false) }
        try await waitUntil("the ninth to wait") { await scheduler.finalsWaiting > 0 }
        #expect(await scheduler.callsInFlight == 8)
        await scheduler.finished()
        try await ninth.value
        #expect(await scheduler.callsInFlight == 8)
        // A final waiting for a slot ends with its task (shutdown), having sent nothing.
        let tenth = Task { try await scheduler.acquireFinal(chat: 10, isGroup: false) }
        try await waitUntil("the tenth to wait") { await scheduler.finalsWaiting > 0 }
        tenth.cancel()
        #expect(await tenth.result.isFailure)
        #expect(await scheduler.callsInFlight == 8)
    }

    @Test func intermediatesYieldToFinalsAndToTheChatBudget() async throws {
        let clock = RecordingClock()
        let scheduler = SendScheduler(clock: clock)
        #expect(await scheduler.tryAcquireIntermediate(chat: 1, isGroup: false))
        // The chat's budget is spent for a second: the next update is skipped, not queued.
        #expect(await scheduler.tryAcquireIntermediate(chat: 1, isGroup: false) == false)
        // Another chat is free.
        #expect(await scheduler.tryAcquireIntermediate(chat: 2, isGroup: false))
    }

    @Test func intermediatesAreRefusedWhileAFinalWaits() async throws {
        let scheduler = SendScheduler(clock: ContinuousClock())  // real time: the final must really wait
        await scheduler.rateLimited(chat: 1, retryAfter: 3600)
        let waiting = Task { try await scheduler.acquireFinal(chat: 1, isGroup: false) }
        // The final for chat 1 now waits out its 429; meanwhile chat 2 may not stream.
        try await waitUntil("the final to wait") { await scheduler.finalsWaiting > 0 }
        #expect(await scheduler.tryAcquireIntermediate(chat: 2, isGroup: false) == false)
        waiting.cancel()
        _ = await waiting.result
        #expect(await scheduler.tryAcquireIntermediate(chat: 2, isGroup: false))
    }

    @Test func a429BlocksTheChatForRetryAfter() async throws {
        let clock = RecordingClock()
        let scheduler = SendScheduler(clock: clock)
        await scheduler.rateLimited(chat: 7, retryAfter: 30)
        #expect(await scheduler.tryAcquireIntermediate(chat: 7, isGroup: false) == false)
        try await scheduler.acquireFinal(chat: 7, isGroup: false)
        #expect(clock.now.offset >= .seconds(30))
    }

    @Test func limitsOnSeveralChatsAtOnceBlockEverything() async throws {
        let clock = RecordingClock()
        let scheduler = SendScheduler(clock: clock)
        for chat in Int64(1)...3 { await scheduler.rateLimited(chat: chat, retryAfter: 5) }
        try await scheduler.acquireFinal(chat: 99, isGroup: false)
        #expect(clock.now.offset >= .seconds(5))
    }
}

extension Result {
    var isFailure: Bool {
        if case .failure = self { true } else { false }
    }
}
