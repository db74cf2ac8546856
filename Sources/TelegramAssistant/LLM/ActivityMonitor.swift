import Synchronization

/// Remembers when bytes last arrived on a stream, so a watchdog can tell a slow answer from a stalled one.
public final class ActivityMonitor: Sendable {
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    public init() {}

    /// Records that something arrived now.
    public func touch() {
        let now = ContinuousClock.now
        last.withLock { $0 = now }
    }

    /// When something last arrived; `nil` before the first byte.
    public var lastActivity: ContinuousClock.Instant? { last.withLock { $0 } }
}

/// The three deadlines of one model call. libcurl's own resource timeout is ignored on Linux, so
/// these are enforced by a watchdog task next to the stream.
public struct LLMTimeouts: Sendable, Equatable {
    /// From sending the request to the first byte of the answer.
    public var firstByte: Duration
    /// The longest silence allowed between two chunks once the answer has begun.
    public var idle: Duration
    /// The whole call, from request to the last token.
    public var total: Duration

    public init(firstByte: Duration, idle: Duration, total: Duration) {
        self.firstByte = firstByte
        self.idle = idle
        self.total = total
    }

    /// Runs `operation` and throws `LLMError.timeout` when a deadline passes; the operation is
    /// cancelled then, which aborts its transfer.
    func enforce<T: Sendable>(
        _ operation: @escaping @Sendable (ActivityMonitor) async throws -> T
    ) async throws -> T {
        let monitor = ActivityMonitor()
        let start = ContinuousClock.now
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation(monitor) }
            group.addTask {
                try await watch(monitor, start: start)
                return nil
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw CancellationError()
        }
    }

    /// Sleeps until the nearest deadline and throws when it has really passed; returns only by throwing.
    private func watch(_ monitor: ActivityMonitor, start: ContinuousClock.Instant) async throws {
        let totalDeadline = start + total
        while true {
            let last = monitor.lastActivity
            let progressDeadline = last.map { $0 + idle } ?? start + firstByte
            // Before the first byte, wake at least every `idle` too: once bytes flow, the idle
            // deadline may come long before the first-byte one.
            let wake = min(totalDeadline, progressDeadline, last == nil ? ContinuousClock.now + idle : progressDeadline)
            try await ContinuousClock().sleep(until: wake)
            let now = ContinuousClock.now
            if now >= totalDeadline { throw LLMError.timeout(.total) }
            if monitor.lastActivity == last, now >= progressDeadline {
                throw LLMError.timeout(last == nil ? .firstByte : .idle)
            }
        }
    }
}
