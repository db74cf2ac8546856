/// Exponential backoff with jitter: the one rule for waiting between tries of anything that failed
/// (polling Telegram, a final message, a model call).
///
/// The ceiling starts at `base`, doubles with every failure and stops at `maximum`; the wait is
/// drawn between `(1 - jitter)` and all of the ceiling, and is never below `minimum`. `jitter`
/// 0.5 ("equal jitter") keeps a floor under every wait; 1 ("full jitter") spreads retries the most.
public struct Backoff: Sendable {
    public var base: Duration
    public var maximum: Duration
    public var minimum: Duration
    public var jitter: Double
    /// Returns a number in 0..<1; injected so tests can pin the jitter.
    public var random: @Sendable () -> Double

    public init(
        base: Duration, maximum: Duration, minimum: Duration = .zero, jitter: Double = 0.5,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.base = base
        self.maximum = maximum
        self.minimum = minimum
        self.jitter = jitter
        self.random = random
    }

    /// The wait after the `failures`-th failure in a row (1 for the first).
    public func wait(after failures: Int) -> Duration {
        let ceiling = min(maximum, base * (1 << (max(1, min(failures, 16)) - 1)))
        let share = (1 - jitter) + jitter * min(max(random(), 0), 1)
        return max(minimum, ceiling * share)
    }
}
