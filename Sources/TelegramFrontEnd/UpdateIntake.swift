import AssistantStore
import Conversation
import Foundation
import Logging
import ServiceLifecycle
import Support
import Synchronization
import TelegramBotAPI

/// Brings updates in and owns their whole life in the ledger: `received` (saved before Telegram is
/// told), `answering` (a reply under way), `handled`; what a restart left open; a group that moved
/// to a new chat id.
///
/// Updates are saved (with the next offset) before the next getUpdates confirms them to Telegram,
/// so a crash between the two only makes Telegram send them again, and the saved copy says they
/// were already seen. Network errors and 5xx back off with jitter, at most a few seconds, so the bot
/// answers soon after Telegram comes back; a 409 (another instance, or a webhook) is logged clearly
/// and backed off; a rejected token ends the service with `TelegramError.unauthorized`.
public final class UpdateIntake: Service, Sendable, CustomStringConvertible {
    let client: BotAPIClient
    let store: any Store
    let engine: ConversationEngine
    let pollTimeout: Int
    let status: StatusReporter
    let output: AsyncStream<Incoming>.Continuation
    let stopwatch: Stopwatch
    let clock: any Clock<Duration>
    let random: @Sendable () -> Double
    let logger: Logger
    /// Webhook mode: Telegram pushes updates to `receivePushed` instead of being polled.
    let webhook: TelegramConfig.Webhook?
    /// Notified when the webhook's listener runs (`listenerIsUp`).
    private let listenerUp = ChangeSignal()
    /// Set once what a restart left open has been handed over: a pushed update waits for it.
    private let resumed = Mutex(false)
    /// Replicas on one database: the chats this one answers. Updates reach the dispatcher only
    /// through it, whoever received them.
    let leases: ChatLeases?
    /// Replicas on one database: runs its argument (the polling loop) whenever this replica leads,
    /// until cancelled; one replica polls at a time.
    let leadPolling: (@Sendable (@escaping @Sendable () async throws -> Void) async throws -> Void)?

    /// The conversations of Telegram chats are of this kind.
    public static let conversationKind = "telegram"

    public init(
        client: BotAPIClient, store: any Store, engine: ConversationEngine, pollTimeout: Int, status: StatusReporter,
        output: AsyncStream<Incoming>.Continuation, stopwatch: Stopwatch, clock: any Clock<Duration>, logger: Logger,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }, webhook: TelegramConfig.Webhook? = nil,
        leases: ChatLeases? = nil, leadPolling: (@Sendable (@escaping @Sendable () async throws -> Void) async throws -> Void)? = nil
    ) {
        self.webhook = webhook
        self.leases = leases
        self.leadPolling = leadPolling
        self.client = client
        self.store = store
        self.engine = engine
        self.pollTimeout = pollTimeout
        self.status = status
        self.output = output
        self.stopwatch = stopwatch
        self.clock = clock
        self.random = random
        self.logger = logger
    }

    public var description: String { "UpdateIntake" }

    /// First what a restart left open (unanswered updates, replies cut off mid-way), then new
    /// updates until graceful shutdown, which stops polling at once. Ends the update stream.
    public func run() async throws {
        defer { output.finish() }
        if let leases {
            try await runReplica(leases)
            return
        }
        await handOver(try await store.openUpdates())
        resumed.withLock { $0 = true }
        guard let webhook else {
            status.ready()
            try await cancelWhenGracefulShutdown { try await self.poll() }
            return
        }
        // Webhook mode: updates arrive through `receivePushed` until the shutdown.
        try await cancelWhenGracefulShutdown { try await self.setWebhookOnceListening(webhook) }
        status.pushed()
        status.ready()
        try? await gracefulShutdown()
    }

    /// Hands stored updates over to the dispatcher, oldest first: an update found `answering` was
    /// cut off (by a restart, or a replica that died) and is resumed as such.
    private func handOver(_ open: [StoredUpdate]) async {
        for open in open {
            guard let update = try? JSONDecoder().decode(Telegram.Update.self, from: Data(open.update.payload.utf8)) else {
                logger.warning("update_undecodable", metadata: ["update_id": .stringConvertible(open.update.id), "error_type": "stored_update_undecodable"])
                await handled(open.update.id)
                continue
            }
            output.yield(
                Incoming(
                    update: update, receivedAt: stopwatch.elapsed, interruptedByRestart: open.status == .answering,
                    pendingReply: open.pendingReply))
        }
    }

    /// One replica of several on a shared database: updates are received (polled while this
    /// replica leads, or pushed to every replica) and stored; the chats' leases decide which
    /// replica answers them, so updates reach the dispatcher only from `leases`.
    private func runReplica(_ leases: ChatLeases) async throws {
        // The leases hand updates over in order, whenever they arrive.
        resumed.withLock { $0 = true }
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await leases.claim { await self.handOver($0) } }
                if let webhook = self.webhook {
                    try await self.setWebhookOnceListening(webhook)
                    self.status.pushed()
                    self.status.ready()
                    return
                }
                self.status.polling(false)
                self.status.ready()
                let poll: @Sendable () async throws -> Void = {
                    self.status.polling(true)
                    defer { self.status.polling(false) }
                    try await self.poll()
                }
                try await (self.leadPolling ?? { try await $0() })(poll)
            }
        }
    }

    /// The webhook's listener accepts connections (its server calls this once it runs).
    public func listenerIsUp() {
        listenerUp.notify()
    }

    /// Sets the webhook once its listener is up: Telegram posts to it at once, and a post that
    /// finds nothing there waits for Telegram's retry, which can be minutes later.
    private func setWebhookOnceListening(_ webhook: TelegramConfig.Webhook) async throws {
        await listenerUp.wait()
        try Task.checkCancellation()
        try await setWebhook(webhook)
    }

    /// Asks Telegram to push to the webhook. Replicas starting together all ask, and Telegram
    /// answers a second setWebhook within about a second with 429: then, if the webhook is already
    /// ours, that is enough; otherwise ask again after `retry_after`. A rejected token ends the service.
    private func setWebhook(_ webhook: TelegramConfig.Webhook) async throws {
        var failures = 0
        while true {
            do {
                try await client.setWebhook(
                    url: webhook.url, secretToken: webhook.secret, allowedUpdates: Telegram.allowedUpdates, maxConnections: webhook.maxConnections)
                logger.info("webhook_set", metadata: ["max_connections": .stringConvertible(webhook.maxConnections)])
                return
            } catch TelegramError.rateLimited(let retryAfter) {
                if let info = try? await client.getWebhookInfo(), info.url == webhook.url.absoluteString {
                    logger.info("webhook_set", metadata: ["by": "another replica"])
                    return
                }
                try await clock.sleep(for: .seconds(retryAfter))
            } catch TelegramError.unauthorized {
                logger.critical("token_rejected", metadata: ["error_type": "telegram_unauthorized"])
                throw TelegramError.unauthorized
            } catch let error as TelegramError {
                failures += 1
                logger.error("webhook_failed", metadata: ["error_type": .string(error.errorType), "failures": .stringConvertible(failures)])
                try await clock.sleep(for: Self.backoff(conflict: false, random: random).wait(after: failures))
            }
        }
    }

    // MARK: Webhook

    /// What became of a pushed update, and so what Telegram is answered.
    public enum Pushed: Sendable, Equatable {
        /// Saved (or seen before): 200, Telegram forgets it.
        case stored
        /// Not an update this bot can read: 200 as well, or Telegram would send it forever.
        case undecodable
        /// Not saved (the database failed, or the bot is still starting): 500 or 503, and
        /// Telegram sends it again later. Nothing is lost.
        case notStored(String)
    }

    /// An update Telegram posted to the webhook: saved in the ledger before the answer, then handed
    /// over like a polled one (a pushed update is answered 200 only once it is durably stored).
    public func receivePushed(_ body: [UInt8]) async -> Pushed {
        guard resumed.withLock({ $0 }) else { return .notStored("starting") }
        let polled: Telegram.PolledUpdate
        do {
            polled = try Self.decoder.decode(Telegram.PolledUpdate.self, from: Data(body))
        } catch {
            logger.warning("update_undecodable", metadata: ["error_type": "telegram_undecodable_webhook"])
            return .undecodable
        }
        guard let update = polled.update else {
            if case .undecodable(let id, let field, let problem) = polled {
                logger.warning(
                    "update_undecodable",
                    metadata: ["update_id": .stringConvertible(id ?? -1), "field": .string(field), "error_type": .string("telegram_undecodable_\(problem)")])
            }
            return .undecodable
        }
        do {
            try await receive([update], nextOffset: nil)
            status.polled()
            return .stored
        } catch {
            logger.error("store_failed", metadata: ["update_id": .stringConvertible(update.update_id), "error_type": "storage", "error": "\(error)"])
            return .notStored("storage")
        }
    }

    private static let decoder = JSONDecoder()

    // MARK: Polling

    /// The longest wait between two polls while Telegram fails.
    static let maxBackoff: Duration = .seconds(5)

    /// 0.5 s doubling to `maxBackoff`, each wait between half and all of its ceiling; at least 3 s
    /// after a 409, matching how Telegram spaces its conflict answers.
    static func backoff(conflict: Bool, random: @escaping @Sendable () -> Double) -> Backoff {
        Backoff(base: .milliseconds(500), maximum: maxBackoff, minimum: conflict ? .seconds(3) : .milliseconds(200), random: random)
    }

    /// Polls until cancelled, handing over every update not seen before, in order.
    private func poll() async throws {
        var failures = 0
        while !Task.isCancelled {
            status.turned()
            do {
                let offset = try await store.updateOffset()
                let polled = try await client.getUpdates(offset: offset, timeout: pollTimeout)
                failures = 0
                status.polled()
                guard let last = polled.compactMap(\.updateID).max() else { continue }
                for case .undecodable(let id, let field, let problem) in polled {
                    // Confirmed with the rest (the offset passes it): one odd update never blocks polling.
                    logger.warning(
                        "update_undecodable",
                        metadata: [
                            "update_id": .stringConvertible(id ?? -1), "field": .string(field), "error_type": .string("telegram_undecodable_\(problem)"),
                        ])
                }
                try await receive(polled.compactMap(\.update), nextOffset: last + 1)
            } catch is CancellationError {
                return
            } catch TelegramError.unauthorized {
                logger.critical(
                    "token_rejected",
                    metadata: [
                        "error_type": "telegram_unauthorized",
                        "hint": "Telegram no longer accepts TELEGRAM_BOT_TOKEN (revoked in @BotFather?): put the new token in the env file and restart",
                    ])
                throw TelegramError.unauthorized
            } catch let error as TelegramError {
                failures += 1
                let conflict = if case .conflict = error { true } else { false }
                if conflict {
                    logger.error(
                        "poll_conflict",
                        metadata: [
                            "error_type": "telegram_conflict",
                            "hint": "another instance is polling this bot, or a webhook is set; only one may run per token",
                        ])
                } else {
                    logger.warning("poll_failed", metadata: ["error_type": .string(error.errorType), "failures": .stringConvertible(failures)])
                }
                guard (try? await clock.sleep(for: Self.backoff(conflict: conflict, random: random).wait(after: failures))) != nil else { return }
            } catch {
                failures += 1
                logger.error("poll_failed", metadata: ["error_type": "storage", "error": "\(error)"])
                guard (try? await clock.sleep(for: Self.backoff(conflict: false, random: random).wait(after: failures))) != nil else { return }
            }
        }
    }

    /// Saves `updates` as received, with the offset that confirms them, and hands over those not
    /// seen before (replicas: the chats' leases hand them over, at whichever replica).
    func receive(_ updates: [Telegram.Update], nextOffset: Int64?) async throws {
        var byID: [Int64: Telegram.Update] = [:]
        let rows = try updates.map { update in
            byID[update.update_id] = update
            return try Self.row(update)
        }
        let now = stopwatch.elapsed
        let fresh = try await store.saveReceived(rows, nextOffset: nextOffset)
        guard leases == nil else { return }
        for row in fresh {
            if let update = byID[row.id] { output.yield(Incoming(update: update, receivedAt: now)) }
        }
    }

    /// An update as the ledger keeps it. Keys sorted: the same update gives the same text, so one
    /// that Telegram sends again is recognised.
    static func row(_ update: Telegram.Update) throws -> UpdateRow {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return UpdateRow(id: update.update_id, chatID: update.chatID, payload: String(decoding: try encoder.encode(update), as: UTF8.self))
    }

    // MARK: The lifecycle of an update

    /// A reply to the update is under way: a restart from here on tells the user, or delivers the
    /// saved answer. Committed with the user's turn that starts the answer (`engine.reply`), before
    /// anything of it can be shown.
    func answering(_ updateIDs: [Int64]) -> [UpdateStatusChange] {
        updateIDs.map { UpdateStatusChange(updateID: $0, status: .answering) }
    }

    /// Replicas: whether this one may still show something for these updates of the chat (see
    /// `ChatLeases.stillHolds`); always true for a single process.
    func mayAnswer(_ chatID: Int64, updateIDs: [Int64]) async -> Bool {
        guard let leases else { return true }
        return await leases.stillHolds(chatID, updateIDs: updateIDs)
    }

    /// The update needs nothing more. A failure is logged: the update is then answered again after
    /// a restart, which is the safe side.
    func handled(_ updateID: Int64) async {
        await handled([updateID])
    }

    /// Several updates answered together (an album), in one transaction.
    func handled(_ updateIDs: [Int64]) async {
        do {
            try await store.setUpdateStatus(updateIDs, .handled)
            leases?.poke()
        } catch {
            logger.error("store_failed", metadata: ["update_id": .stringConvertible(updateIDs.first ?? 0), "error_type": "storage", "error": "\(error)"])
        }
    }

    /// Where a reply's final text and delivery progress are written down, so that a restart can
    /// deliver the rest of an answer without asking the model again; its last step marks the
    /// update (and its album's parts) handled.
    func journal(_ updateIDs: [Int64]) -> ReplyJournal {
        let updateID = updateIDs[0]
        let (store, logger) = (self.store, self.logger)
        return ReplyJournal(
            finalReady: { text, partsSent, streamMessage in
                do {
                    let payload = String(decoding: try JSONEncoder().encode(text), as: UTF8.self)
                    try await store.savePendingReply(PendingReply(payload: payload, partsSent: partsSent, streamMessage: streamMessage), updateID: updateID)
                } catch {
                    // Delivery goes on; only a restart before it ends would fall back to the notice.
                    logger.error("store_failed", metadata: ["update_id": .stringConvertible(updateID), "error_type": "storage", "error": "\(error)"])
                }
            },
            partsSent: { count in
                do {
                    try await store.setReplyPartsSent(count, updateID: updateID)
                } catch {
                    logger.error("store_failed", metadata: ["update_id": .stringConvertible(updateID), "error_type": "storage", "error": "\(error)"])
                }
            },
            delivered: { [self] in await handled(updateIDs) })
    }

    /// The saved final text of a reply a restart cut off, if it can be read.
    func savedFinal(_ pending: PendingReply) -> FormattedText? {
        try? JSONDecoder().decode(FormattedText.self, from: Data(pending.payload.utf8))
    }

    /// A group became a supergroup (a service message, or a send that Telegram redirected): its
    /// conversation follows to the new id, history intact.
    func migrate(from oldID: Int64, to newID: Int64) async {
        do {
            try await engine.moveConversation(kind: Self.conversationKind, from: oldID, to: newID)
            logger.info("chat_migrated", metadata: ["chat_id": .stringConvertible(oldID), "new_chat_id": .stringConvertible(newID)])
        } catch {
            logger.error("store_failed", metadata: ["chat_id": .stringConvertible(oldID), "error_type": "storage", "error": "\(error)"])
        }
    }
}
