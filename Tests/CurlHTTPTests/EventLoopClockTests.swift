import Testing
import TestSupport

@testable import CurlHTTP

/// `HTTPClient.clock`: sleeps kept by the event thread.
@Suite(.timeLimit(.minutes(1))) struct EventLoopClockTests {
    let client = HTTPClient()

    @Test func manySleepsAllEndAndNoneEarly() async throws {
        let clock = client.clock
        // How much too early each sleep ended (zero for one on time or late).
        let early = await withTaskGroup(of: Duration.self) { group in
            for index in 0..<300 {
                group.addTask {
                    let deadline = clock.now + .milliseconds((index * 37) % 120)
                    try? await clock.sleep(until: deadline)
                    return max(.zero, deadline - clock.now)
                }
            }
            return await group.reduce(into: [Duration]()) { $0.append($1) }
        }
        #expect(early.count == 300)
        #expect(early.allSatisfy { $0 == .zero })
        #expect(client.loopForTests.sleepersWaiting == 0)
    }

    @Test func aSoonerSleepWakesTheThreadWhileALaterOneWaits() async throws {
        let clock = client.clock
        let long = Task { try await clock.sleep(for: .seconds(3600)) }
        try await waitFor("the long sleep to be registered") { client.loopForTests.sleepersWaiting == 1 }
        // The thread now sleeps with an hour's timeout: only the wake-up makes this one end.
        let start = clock.now
        try await clock.sleep(for: .milliseconds(20))
        #expect(clock.now - start >= .milliseconds(20))
        #expect(client.loopForTests.sleepersWaiting == 1)
        long.cancel()
        await #expect(throws: CancellationError.self) { try await long.value }
    }

    @Test func aCancelledSleepEndsAtOnceAndIsForgotten() async throws {
        let clock = client.clock
        let sleeper = Task { try await clock.sleep(for: .seconds(3600)) }
        try await waitFor("the sleep to be registered") { client.loopForTests.sleepersWaiting == 1 }
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(client.loopForTests.sleepersWaiting == 0)
    }

    @Test func aCancelledTaskDoesNotSleep() async throws {
        let clock = client.clock
        let sleeper = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await clock.sleep(for: .seconds(3600))
        }
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(client.loopForTests.sleepersWaiting == 0)
    }

    @Test func sleepsGoOnWhenTheClientIsGone() async throws {
        var owner: HTTPClient? = HTTPClient()
        let clock = owner!.clock
        let sleeping = Task {
            // Long enough that it is still asleep when this test looks, even at the start of the
            // suite, when a task can wait seconds for a thread (200 ms was not, in CI).
            let deadline = clock.now + .seconds(3)
            try await clock.sleep(until: deadline)
            return clock.now >= deadline
        }
        try await waitFor("the sleep to be registered") { clock.loop.sleepersWaiting == 1 }
        owner = nil
        try await waitFor("the event thread to stop") { clock.loop.hasStopped }
        #expect(try await sleeping.value)
        // And a new one still waits its time.
        let deadline = clock.now + .milliseconds(30)
        try await clock.sleep(until: deadline)
        #expect(clock.now >= deadline)
    }
}
