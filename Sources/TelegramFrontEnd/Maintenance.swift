import AssistantStore
import Foundation
import Logging
import ServiceLifecycle

/// Keeps the database from growing without end while the bot runs for months: once at start and
/// then every `interval`, it forgets handled updates past `updateRetention` (Telegram never sends
/// them again after a day), turns past `historyRetention` when the operator set one
/// (`HISTORY_RETENTION_DAYS`), and gives the freed pages back to the file system.
public struct Maintenance: Service, CustomStringConvertible {
    let store: Store
    let interval: Duration
    let updateRetention: Duration
    let historyRetention: Duration?
    let clock: any Clock<Duration>
    let logger: Logger

    public init(
        store: Store, interval: Duration, updateRetention: Duration, historyRetention: Duration?, clock: any Clock<Duration>, logger: Logger
    ) {
        self.store = store
        self.interval = interval
        self.updateRetention = updateRetention
        self.historyRetention = historyRetention
        self.clock = clock
        self.logger = logger
    }

    public var description: String { "Maintenance" }

    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                runOnce()
                do {
                    try await clock.sleep(for: interval)
                } catch {
                    return
                }
            }
        }
    }

    func runOnce() {
        do {
            let updates = try store.pruneHandledUpdates(olderThan: updateRetention.seconds)
            let turns = try historyRetention.map { try store.deleteMessages(olderThan: $0.seconds) } ?? 0
            try store.compact()
            if updates + turns > 0 {
                logger.debug("maintenance", metadata: ["updates_pruned": .stringConvertible(updates), "turns_deleted": .stringConvertible(turns)])
            }
        } catch {
            logger.error("maintenance_failed", metadata: ["error_type": "storage", "error": "\(error)"])
        }
    }
}
