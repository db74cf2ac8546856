import Support
import Synchronization

/// A token bucket per user: `perMinute` messages, refilled continuously. Bounded: buckets of people
/// idle for a minute are full and forgotten, and past `capacity` the longest idle go first.
final class UserRateLimiter: Sendable {
    private let perMinute: Double
    private let capacity: Int
    private let stopwatch: Stopwatch
    private let buckets = Mutex<[Int64: TokenBucket]>([:])

    init(perMinute: Int, clock: any Clock<Duration>, capacity: Int = 10_000) {
        self.perMinute = Double(perMinute)
        self.capacity = capacity
        stopwatch = Stopwatch(clock)
    }

    /// Takes a token for `user`; returns nil when allowed, or how long until the next one.
    func admit(_ user: Int64) -> Duration? {
        let now = stopwatch.elapsed
        return buckets.withLock { buckets in
            if buckets.count >= capacity {
                buckets = buckets.filter { !$0.value.isFull(at: now) }
                if buckets.count >= capacity {
                    let kept = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(capacity / 2)
                    buckets = Dictionary(uniqueKeysWithValues: kept.map { ($0.key, $0.value) })
                }
            }
            var bucket = buckets[user] ?? TokenBucket(capacity: perMinute, perSecond: perMinute / 60, now: now)
            defer { buckets[user] = bucket }
            return bucket.take(now)
        }
    }

    /// People with a bucket right now.
    var count: Int { buckets.withLock { $0.count } }
}
