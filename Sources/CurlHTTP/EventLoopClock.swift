/// `ContinuousClock` time, with sleeps kept by the HTTP event thread (`HTTPClient.clock`).
///
/// `ContinuousClock`'s sleeps go through libdispatch's timer thread: each one wakes that thread to
/// arm a timer and again when it fires, and a sleep that is cancelled (a deadline that was not
/// needed) still fires later. The event thread already waits in `epoll_wait` with a timeout, so a
/// sleep here only shortens that timeout when it is the soonest, fires with one wake-up, and is
/// forgotten when cancelled. Once the client is gone, sleeps go on on `ContinuousClock`.
public struct EventLoopClock: Clock {
    public typealias Instant = ContinuousClock.Instant
    let loop: EventLoop

    public var now: Instant { .now }
    /// `epoll_wait` counts in milliseconds, rounded up: a sleep ends up to a millisecond late.
    public var minimumResolution: Duration { .milliseconds(1) }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try Task.checkCancellation()
        if deadline <= .now { return }
        switch await loop.sleep(until: deadline) {
        case .due: return
        case .cancelled: throw CancellationError()
        case .loopStopped: try await ContinuousClock().sleep(until: deadline, tolerance: tolerance)
        }
    }
}
