import AssistantStore
import Foundation
import Logging
import ServiceLifecycle

/// Keeps the database from growing without end while the bot runs for months: once at start and
/// then every `interval`, it forgets handled updates past `updateRetention` (Telegram never sends
/// them again after a day), turns past `historyRetention` when the operator set one
/// (`HISTORY_RETENTION_DAYS`), and gives the freed pages back to the file system.
public struct Maintenance: Service, CustomStringConvertible {
    let store: any Store
    let interval: Duration
    let updateRetention: Duration
    let historyRetention: Duration?
    let clock: any Clock<Duration>
    let logger: Logger

    public init(
        store: any Store, interval: Duration, updateRetention: Duration, historyRetention: Duration?, clock: any Clock<Duration>, logger: Logger
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
                await runOnce()
                do {
                    try await clock.sleep(for: interval)
                } catch {
                    return
                }
            }
        }
    }

    func runOnce() async {
        do {
            let updates = try await store.pruneHandledUpdates(olderThan: updateRetention.seconds)
            var turns = 0
            if let historyRetention { turns = try await store.deleteMessages(olderThan: historyRetention.seconds) }
            try await store.compact()
            if updates + turns > 0 {
                logger.debug("maintenance", metadata: ["updates_pruned": .stringConvertible(updates), "turns_deleted": .stringConvertible(turns)])
            }
        } catch {
            logger.error("maintenance_failed", metadata: ["error_type": "storage", "error": "\(error)"])
        }
    }
}
