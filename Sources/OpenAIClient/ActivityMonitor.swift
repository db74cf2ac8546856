import Support
import Synchronization

/// Remembers when bytes last arrived on a stream, so a watchdog can tell a slow answer from a stalled one.
final class ActivityMonitor: Sendable {
    private let stopwatch: Stopwatch
    private let last = Mutex<Duration?>(nil)

    /// Times are measured on `clock` from now.
    init(clock: any Clock<Duration>) {
        stopwatch = Stopwatch(clock)
    }

    /// Time since the monitor was made.
    var elapsed: Duration { stopwatch.elapsed }

    /// Records that something arrived now.
    func touch() {
        let now = stopwatch.elapsed
        last.withLock { $0 = now }
    }

    /// When something last arrived (since the monitor was made); `nil` before the first byte.
    var lastActivity: Duration? { last.withLock { $0 } }
}
