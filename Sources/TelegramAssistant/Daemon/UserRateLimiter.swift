import Synchronization

/// A token bucket per user: `perMinute` messages, refilled continuously. Bounded: buckets of people
/// idle for a minute are full and forgotten, and past `capacity` the longest idle go first.
public final class UserRateLimiter: Sendable {
    private let perMinute: Double
    private let capacity: Int
    private let stopwatch: Stopwatch
    private let buckets = Mutex<[Int64: (tokens: Double, at: Duration)]>([:])

    public init(perMinute: Int, clock: any Clock<Duration> = ContinuousClock(), capacity: Int = 10_000) {
        self.perMinute = Double(perMinute)
        self.capacity = capacity
        stopwatch = Stopwatch(clock)
    }


    /// Takes a token for `user`; returns nil when allowed, or how long until the next one.
    public func admit(_ user: Int64) -> Duration? {
        let now = stopwatch.elapsed
        return buckets.withLock { buckets in
            if buckets.count >= capacity {
                buckets = buckets.filter { now - $0.value.at < .seconds(60) }
                if buckets.count >= capacity {
                    buckets = Dictionary(uniqueKeysWithValues: buckets.sorted { $0.value.at > $1.value.at }.prefix(capacity / 2).map { ($0.key, $0.value) })
                }
            }
            var (tokens, at) = buckets[user] ?? (perMinute, now)
            tokens = min(perMinute, tokens + (now - at).seconds * perMinute / 60)
            at = now
            defer { buckets[user] = (tokens, at) }
            if tokens >= 1 {
                tokens -= 1
                return nil
            }
            return .seconds((1 - tokens) * 60 / perMinute)
        }
    }

    /// People with a bucket right now.
    var count: Int { buckets.withLock { $0.count } }
}
