import Support

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

    /// Runs `operation` and throws `LLMError.timeout` when a deadline passes on `clock`; the
    /// operation is cancelled then, which aborts its transfer.
    func enforce<T: Sendable>(
        clock: any Clock<Duration>, _ operation: @escaping @Sendable (ActivityMonitor) async throws -> T
    ) async throws -> T {
        let monitor = ActivityMonitor(clock: clock)
        return try await race({ try await operation(monitor) }, against: { try await watch(monitor, clock: clock) })
    }

    /// Sleeps until the nearest deadline and throws when it has really passed; returns only by throwing.
    private func watch(_ monitor: ActivityMonitor, clock: any Clock<Duration>) async throws {
        while true {
            let last = monitor.lastActivity
            let progressDeadline = last.map { $0 + idle } ?? firstByte
            // Before the first byte, wake at least every `idle` too: once bytes flow, the idle
            // deadline may come long before the first-byte one.
            let wake = min(total, progressDeadline, last == nil ? monitor.elapsed + idle : progressDeadline)
            try await clock.sleep(for: max(.zero, wake - monitor.elapsed))
            let now = monitor.elapsed
            if now >= total { throw LLMError.timeout(.total) }
            if monitor.lastActivity == last, now >= progressDeadline {
                throw LLMError.timeout(last == nil ? .firstByte : .idle)
            }
        }
    }
}
