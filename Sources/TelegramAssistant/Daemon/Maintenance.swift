import Foundation
import Logging

/// Keeps the database from growing without end while the bot runs for months: once at start and
/// then every `interval`, it forgets handled updates past `updateRetention` (Telegram never sends
/// them again after a day), turns past `historyRetention` when the operator set one
/// (`HISTORY_RETENTION_DAYS`), and gives the freed pages back to the file system.
struct Maintenance: Sendable {
    var interval: Duration
    var updateRetention: Duration
    var historyRetention: Duration?

    func run(store: Store, clock: any Clock<Duration>, logger: Logger) async {
        while !Task.isCancelled {
            runOnce(store: store, logger: logger)
            do {
                try await clock.sleep(for: interval)
            } catch {
                return
            }
        }
    }

    func runOnce(store: Store, now: Date = Date(), logger: Logger) {
        do {
            let updates = try store.pruneHandledUpdates(olderThan: updateRetention.seconds, now: now)
            let turns = try historyRetention.map { try store.deleteMessages(olderThan: $0.seconds, now: now) } ?? 0
            try store.compact()
            if updates + turns > 0 {
                logger.debug("maintenance", metadata: ["updates_pruned": .stringConvertible(updates), "turns_deleted": .stringConvertible(turns)])
            }
        } catch {
            logger.error("maintenance_failed", metadata: ["error_type": "storage", "error": "\(error)"])
        }
    }
}
