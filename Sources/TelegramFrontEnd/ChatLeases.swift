import AssistantStore
import Logging
import ServiceLifecycle
import Support
import Synchronization
import TelegramBotAPI

/// This replica's part in a shared database (`SharedStore`, PostgreSQL): its heartbeat, its share of
/// Telegram's global budget, and the chats it answers.
///
/// Whichever replica received an update (the one that polls, or any in webhook mode), the update
/// waits in the ledger until a replica leases its chat; that replica then answers every open
/// update of the chat, in order, until none is left, and gives the chat back. So one replica at a
/// time answers a chat, and every replica answers. A replica that dies keeps its chats only until
/// its heartbeat expires (`timeout`); the others then take them and resume them as a restart does:
/// a saved answer is delivered, a reply cut off is marked.
///
/// As a service it keeps the heartbeat from start until its graceful shutdown, which comes after
/// the dispatcher's (replies in flight finish first); then it leaves, so the others take what is
/// left at once.
public final class ChatLeases: Service, Sendable, CustomStringConvertible {
    let store: any SharedStore
    /// This process's name in the database: unique per start.
    public let replica: String
    /// How long a replica that stopped its heartbeat keeps its chats.
    let timeout: Duration
    let scheduler: SendScheduler
    let clock: any Clock<Duration>
    let logger: Logger
    private let state = Mutex(State())
    /// Wakes the claimer: updates were saved, or a chat was finished.
    private let wake = ChangeSignal()
    /// Set once the others count this replica in their share of the global budget.
    private let joined = ChangeSignal()

    private let stopwatch: Stopwatch

    private struct State {
        var joined = false
        var alive = 1
        /// When the last heartbeat that the database took was sent (on `stopwatch`): the leases
        /// hold at least `timeout` from then.
        var lastBeat: Duration?
        /// Updates handed to the dispatcher and still open.
        var handedOver: Set<Int64> = []
        var held = 0
    }

    public init(store: any SharedStore, replica: String, timeout: Duration, scheduler: SendScheduler, clock: any Clock<Duration>, logger: Logger) {
        self.store = store
        self.replica = replica
        self.timeout = timeout
        self.scheduler = scheduler
        self.clock = clock
        self.logger = logger
        stopwatch = Stopwatch(clock)
    }

    public var description: String { "ChatLeases(\(replica))" }

    /// How often the heartbeat is renewed, and the claimer looks without being woken.
    var interval: Duration { timeout / 3 }

    /// Updates handed to the dispatcher and not yet seen handled.
    var handedOver: Set<Int64> { state.withLock { $0.handedOver } }

    /// Chats this replica holds, and how many replicas are alive (for /metrics).
    public var counts: (chats: Int, replicas: Int) { state.withLock { ($0.held, $0.alive) } }

    // MARK: The heartbeat

    public func run() async {
        await cancelWhenGracefulShutdown { [self] in
            var failures = 0
            while !Task.isCancelled {
                do {
                    let sent = stopwatch.elapsed
                    let alive = try await store.heartbeat(replica: replica, timeout: timeout)
                    failures = 0
                    let changed = state.withLock { state in
                        defer { (state.alive, state.lastBeat) = (alive, sent) }
                        return state.alive != alive
                    }
                    await scheduler.shareGlobalBudget(among: alive)
                    if changed { logger.info("replicas_alive", metadata: ["replicas": .stringConvertible(alive)]) }
                    if !state.withLock({ $0.joined }) {
                        // The others count this replica at their next heartbeat; till then its budget would be theirs too.
                        if alive > 1 { try await clock.sleep(for: interval) }
                        state.withLock { $0.joined = true }
                        joined.notify()
                        logger.info("replica_joined", metadata: ["replica": .string(replica), "replicas": .stringConvertible(alive)])
                        continue
                    }
                } catch is CancellationError {
                    return
                } catch {
                    failures += 1
                    logger.error(
                        "heartbeat_failed",
                        metadata: [
                            "error_type": "storage", "error": "\(error)", "failures": .stringConvertible(failures),
                            "hint": "after \(timeout) without a heartbeat the other replicas take this one's chats",
                        ])
                }
                try? await clock.sleep(for: interval)
            }
        }
        do {
            try await store.leave(replica: replica)
            logger.info("replica_left", metadata: ["replica": .string(replica)])
        } catch {
            logger.error("store_failed", metadata: ["error_type": "storage", "error": "\(error)", "hint": "this replica's chats move when its heartbeat expires"])
        }
    }

    // MARK: Claiming chats

    /// Hands over, through `handOver`, the open updates of the chats this replica leases, each
    /// once and in order, until cancelled. Looks when updates are saved, when a chat is finished,
    /// and every `interval` (a dead replica's chats, a notification lost with its connection).
    func claim(_ handOver: @escaping @Sendable ([StoredUpdate]) async -> Void) async {
        while !state.withLock({ $0.joined }) {
            await joined.wait()
            if Task.isCancelled { return }
        }
        await withDiscardingTaskGroup { group in
            group.addTask { [self] in
                for await _ in store.updatesSaved() { wake.notify() }
            }
            while !Task.isCancelled {
                await pass(handOver)
                _ = try? await race({ [wake] in await wake.wait() }, against: { [clock, interval] in try await clock.sleep(for: interval) })
            }
            group.cancelAll()
        }
    }

    /// One claim: chats with nothing open given back, new updates handed over.
    private func pass(_ handOver: @Sendable ([StoredUpdate]) async -> Void) async {
        // With a heartbeat this old the others may be taking this replica's chats: hand nothing over.
        guard isCurrent else { return }
        let claim: ChatClaim
        do {
            claim = try await store.claimChats(replica: replica, replicas: state.withLock { $0.alive })
        } catch {
            logger.error("claim_failed", metadata: ["error_type": "storage", "error": "\(error)"])
            return
        }
        let fresh = state.withLock { state -> [StoredUpdate] in
            // An update handed over and no longer open was handled.
            state.handedOver.formIntersection(claim.updates.map(\.update.id))
            let fresh = claim.updates.filter { !state.handedOver.contains($0.update.id) }
            state.handedOver.formUnion(fresh.map(\.update.id))
            state.held = claim.chats.count
            return fresh
        }
        if !fresh.isEmpty { await handOver(fresh) }
    }

    /// Something changed that a claim would see (an update handled: its chat may be free now).
    func poke() {
        wake.notify()
    }

    /// The last heartbeat is recent enough that no other replica can have taken this one's chats:
    /// sent less than `timeout - interval` ago.
    var isCurrent: Bool {
        guard let last = state.withLock({ $0.lastBeat }) else { return false }
        return stopwatch.elapsed - last < timeout - interval
    }

    /// Whether this replica still holds the chat, checked right before it shows anything for one
    /// of its updates. When not (its lease lapsed while it stalled, and another replica took the
    /// chat), the update is left to that replica, and handed over again should the chat come back.
    func stillHolds(_ chatID: Int64, updateIDs: [Int64]) async -> Bool {
        var holds = false
        if isCurrent {
            do {
                holds = try await store.holds(chatID, replica: replica)
            } catch {
                logger.error("store_failed", metadata: ["chat_id": .stringConvertible(chatID), "error_type": "storage", "error": "\(error)"])
            }
        }
        if !holds {
            state.withLock { $0.handedOver.subtract(updateIDs) }
            logger.warning(
                "lease_lost", metadata: ["chat_id": .stringConvertible(chatID), "error_type": "lease_lost", "hint": "another replica answers this chat"])
            poke()
        }
        return holds
    }
}
