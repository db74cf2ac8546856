import Synchronization

/// What one reply cost in Telegram calls, for its log line.
public final class ReplyMetrics: Sendable {
    private let counts = Mutex((calls: 0, rateLimited: 0))
    public init() {}
    func call() { counts.withLock { $0.calls += 1 } }
    func limited() { counts.withLock { $0.rateLimited += 1 } }
    public var calls: Int { counts.withLock { $0.calls } }
    public var rateLimited: Int { counts.withLock { $0.rateLimited } }
}
