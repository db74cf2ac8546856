/// A token bucket on a `Duration` time line (a `Stopwatch`'s): `capacity` tokens, refilled at
/// `perSecond`. The one rate limiter: Telegram's send budgets and each user's message rate.
public struct TokenBucket: Sendable {
    public let capacity: Double
    public let perSecond: Double
    public private(set) var tokens: Double
    /// When it was last refilled (or made).
    public private(set) var updated: Duration

    /// A full bucket at `now`.
    public init(capacity: Double, perSecond: Double, now: Duration) {
        self.capacity = capacity
        self.perSecond = perSecond
        tokens = capacity
        updated = now
    }

    /// Adds what accrued since the last refill.
    public mutating func refill(_ now: Duration) {
        tokens = min(capacity, tokens + (now - updated).seconds * perSecond)
        updated = max(updated, now)
    }

    /// How long until a whole token is there (zero when one is).
    public func wait() -> Duration {
        tokens >= 1 ? .zero : .seconds((1 - tokens) / perSecond)
    }

    /// Spends a token (the caller has checked `wait()`, or overdraws on purpose).
    public mutating func spend(_ count: Double = 1) {
        tokens -= count
    }

    /// Refills and, when a token is there, spends it; otherwise returns how long until one is.
    public mutating func take(_ now: Duration) -> Duration? {
        refill(now)
        let wait = wait()
        guard wait == .zero else { return wait }
        spend()
        return nil
    }

    /// Full at `now`: it holds nothing worth remembering.
    public func isFull(at now: Duration) -> Bool {
        var refilled = self
        refilled.refill(now)
        return refilled.tokens >= refilled.capacity
    }
}
