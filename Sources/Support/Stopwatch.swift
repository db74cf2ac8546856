/// Time elapsed on an injected clock since the stopwatch was made, as a plain `Duration`: what
/// budgets and memories need from a clock whose `Instant` type they cannot name.
public struct Stopwatch: Sendable {
    private let read: @Sendable () -> Duration

    public init(_ clock: any Clock<Duration>) {
        read = Self.start(clock)
    }

    private static func start<C: Clock<Duration>>(_ clock: C) -> @Sendable () -> Duration {
        let start = clock.now
        return { start.duration(to: clock.now) }
    }

    /// Time since the stopwatch was made.
    public var elapsed: Duration { read() }
}
