import Support
import Synchronization

/// Who was told something recently (that the bot is private, that they are too fast), so a person
/// who keeps writing costs one notice per `period`, not one per message. Bounded: past `capacity`
/// people, the longest-ago notices are forgotten first.
final class NoticeMemory: Sendable {
    private let period: Duration
    private let capacity: Int
    private let stopwatch: Stopwatch
    private let told = Mutex<[Int64: Duration]>([:])

    init(period: Duration, capacity: Int = 10_000, clock: any Clock<Duration>) {
        self.period = period
        self.capacity = capacity
        stopwatch = Stopwatch(clock)
    }


    /// True when `person` has not been told within the period (and records that they are now).
    func shouldTell(_ person: Int64) -> Bool {
        let now = stopwatch.elapsed
        return told.withLock { told in
            if let last = told[person], now - last < period { return false }
            if told.count >= capacity {
                told = told.filter { now - $0.value < period }
                while told.count >= capacity, let oldest = told.min(by: { $0.value < $1.value }) {
                    told.removeValue(forKey: oldest.key)
                }
            }
            told[person] = now
            return true
        }
    }

    /// People remembered right now (for tests of the bound).
    var count: Int { told.withLock { $0.count } }
}
