/// Time elapsed on an injected clock since the stopwatch was made, as a plain `Duration`: what
/// budgets and memories need from a clock whose `Instant` type they cannot name.
struct Stopwatch: Sendable {
    private let read: @Sendable () -> Duration

    init(_ clock: any Clock<Duration>) {
        read = Self.start(clock)
    }

    private static func start<C: Clock<Duration>>(_ clock: C) -> @Sendable () -> Duration {
        let start = clock.now
        return { start.duration(to: clock.now) }
    }

    /// Time since the stopwatch was made.
    var elapsed: Duration { read() }
}
