import Synchronization
import Testing

@testable import Support

/// `abandoning`: the caller gets its answer when the watcher gives up, even from an operation that
/// never notices cancellation (a query on a connection whose server went silent).
@Suite(.timeLimit(.minutes(1))) struct AbandoningTests {
    /// Work that ignores cancellation and ends only when the test lets it.
    final class Stuck: Sendable {
        private let waiter = Mutex<CheckedContinuation<Void, Never>?>(nil)
        private let released = Mutex(false)
        let cancelled = Mutex(false)

        func run() async -> Int {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let now = released.withLock { $0 }
                    if now { continuation.resume() } else { waiter.withLock { $0 = continuation } }
                }
            } onCancel: {
                cancelled.withLock { $0 = true }
            }
            return 1
        }

        func release() {
            released.withLock { $0 = true }
            waiter.withLock { $0.take() }?.resume()
        }
    }

    struct GaveUp: Error {}

    @Test func theWatchersErrorEndsTheCallWhileTheOperationStillHangs() async throws {
        let stuck = Stuck()
        defer { stuck.release() }
        await #expect(throws: GaveUp.self) {
            try await abandoning({ await stuck.run() }, when: { throw GaveUp() })
        }
        #expect(stuck.cancelled.withLock { $0 }, "the operation was told")
    }

    @Test func aWatcherThatReturnsAbandonsTheOperation() async throws {
        let stuck = Stuck()
        defer { stuck.release() }
        await #expect(throws: Abandoned.self) {
            try await abandoning({ await stuck.run() }, when: {})
        }
    }

    @Test func theOperationsResultWinsAndTheWatcherIsCancelled() async throws {
        let watcherCancelled = Mutex(false)
        let value = try await abandoning({ 42 }) {
            // Would wait an hour: the operation's end must cancel it.
            do { try await Task.sleep(for: .seconds(3600)) } catch { watcherCancelled.withLock { $0 = true } }
        }
        #expect(value == 42)
        try await waitUntil("the watcher was cancelled") { watcherCancelled.withLock { $0 } }
    }

    @Test func theCallersCancellationEndsTheCallAtOnce() async throws {
        let stuck = Stuck()
        defer { stuck.release() }
        let call = Task { try await abandoning({ await stuck.run() }, when: { try await Task.sleep(for: .seconds(3600)) }) }
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
    }

    @Test func aDeadlinesOperationIsNotCancelledWithTheCaller() async throws {
        let (finished, go) = AsyncStream.makeStream(of: Void.self)
        let cancelled = Mutex(false)
        let call = Task {
            try await abandoning(after: .seconds(3600)) {
                for await _ in finished { break }
                cancelled.withLock { $0 = Task.isCancelled }
                return 7
            }
        }
        call.cancel()
        go.yield()
        #expect(try await call.value == 7)
        #expect(!cancelled.withLock { $0 })
    }

    @Test func aDeadlineEndsTheCallWithDeadlineExceeded() async throws {
        let stuck = Stuck()
        defer { stuck.release() }
        await #expect(throws: DeadlineExceeded.self) {
            try await abandoning(after: .milliseconds(50)) { await stuck.run() }
        }
    }
}
