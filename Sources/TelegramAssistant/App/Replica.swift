#if Cluster
import AssistantStore
import Logging
import PostgresStore
import Support

/// Several `telegram-assistant run` on one PostgreSQL: with long polling, one replica leads (it
/// polls Telegram); the others wait, and the first to get the lock takes over when the leader
/// stops or dies. Every replica answers, whichever polls (`ChatLeases`).
enum Replica {
    /// Why a leader stopped: it could no longer show that it holds the lock.
    struct LeadershipLost: Error, CustomStringConvertible {
        var description: String {
            "lost the connection that holds the leader lock: stopped polling, so that another replica can lead"
        }
    }

    /// Runs `poll` whenever this replica leads, until cancelled: it waits its turn, polls while it
    /// leads, and after losing the lock (its connection failed) waits its turn again on a new one.
    static func polling(
        _ location: PostgresLocation, logger: Logger, checkEvery interval: Duration, clock: any Clock<Duration>
    ) -> @Sendable (@escaping @Sendable () async throws -> Void) async throws -> Void {
        { poll in
            var failures = 0
            while !Task.isCancelled {
                do {
                    let leadership = try await PostgresLeadership.connect(location, logger: logger)
                    failures = 0
                    try await lead(leadership, logger: logger, checkEvery: interval, clock: clock, poll)
                    return
                } catch is LeadershipLost {
                    continue
                } catch is CancellationError {
                    return
                } catch {
                    failures += 1
                    logger.error("leadership_failed", metadata: ["error_type": "storage", "error": "\(error)", "failures": .stringConvertible(failures)])
                    try await clock.sleep(for: Backoff(base: interval, maximum: .seconds(10)).wait(after: failures))
                }
            }
        }
    }

    /// Runs `leading` once this replica leads, for as long as it does. Throws `LeadershipLost` (and
    /// cancels `leading`) when the lock's session fails a check; resigns when `leading` returns.
    ///
    /// A replica that had to wait starts `2 × interval` after it got the lock: a leader whose
    /// session ended while it still ran notices within `interval` and stops, so the two never
    /// answer side by side.
    static func lead<T: Sendable>(
        _ leadership: PostgresLeadership, logger: Logger, checkEvery interval: Duration = .seconds(2), clock: any Clock<Duration> = ContinuousClock(),
        _ leading: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        if try await !leadership.tryToLead() {
            logger.info("standby", metadata: ["hint": "another replica leads; this one takes over when that one stops"])
            try await leadership.waitToLead(every: interval, clock: clock)
            try await clock.sleep(for: interval * 2)
        }
        logger.info("leading")
        let result = try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await leading() }
            group.addTask {
                try await leadership.lost(checkingEvery: interval, clock: clock)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                logger.critical("leadership_lost", metadata: ["error_type": "leadership_lost"])
                throw LeadershipLost()
            }
            return result
        }
        await leadership.resign()
        return result
    }
}
#endif
