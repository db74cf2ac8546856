import Support

/// When and how long to wait before trying a failed model call again.
///
/// Only transient faults are retried (see `LLMError.isRetryable`), at most `maxAttempts` times in all,
/// with exponential backoff and full jitter; a 429 waits what `Retry-After` asks, unless that is longer
/// than `maxWait`, in which case waiting in a chat is pointless and the call fails (or falls back).
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    var baseDelay: Duration
    var maxWait: Duration
    /// Returns a number in 0..<1; injected so tests can pin the jitter.
    public var random: @Sendable () -> Double

    public init(
        maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(500), maxWait: Duration = .seconds(20),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxWait = maxWait
        self.random = random
    }

    /// The wait before attempt `attempt + 1` after `error`, or `nil` when no retry should happen.
    func delay(after error: LLMError, attempt: Int) -> Duration? {
        guard error.isRetryable, attempt < maxAttempts else { return nil }
        if case .rateLimited(let retryAfter?) = error {
            return retryAfter <= maxWait ? retryAfter : nil
        }
        // Full jitter: uniform in [0, base · 2^(attempt-1)], never below a tenth of the base.
        return Backoff(base: baseDelay, maximum: maxWait, minimum: baseDelay / 10, jitter: 1, random: random).wait(after: attempt)
    }
}
