#if Cluster
import AssistantStore
import Logging
import PostgresStore

/// Several `telegram-assistant run` on one PostgreSQL: one replica leads (it polls, or takes the
/// webhook, and answers); the others wait, and the first to get the lock takes over when the
/// leader stops or dies, resuming what it left open as a restart does.
enum Replica {
    /// Why a leader stopped: it could no longer show that it holds the lock.
    struct LeadershipLost: Error, CustomStringConvertible {
        var description: String {
            "lost the connection that holds the leader lock: stopping, so that another replica can lead (systemd restarts this one as a standby)"
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
