import CurlHTTP
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Why the bot could not start; the message is for the operator.
public struct BotStartError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// True when retrying cannot help until the configuration changes (a rejected token): the
    /// process then exits 78, which the unit does not restart.
    public var isConfiguration = false
}

/// The Telegram daemon as a service: resumes updates left open by a restart, then polls and
/// routes updates to their chats until shut down.
public struct TelegramBot: Service, CustomStringConvertible {
    public let context: BotContext
    let poller: UpdatePoller
    let router: ChatRouter
    let notifier: SystemdNotifier
    let maintenance: Maintenance

    /// The commands shown in Telegram's menu.
    static let commands: [Telegram.BotCommand] = [
        .init(command: "start", description: "What this bot does"),
        .init(command: "help", description: "Commands"),
        .init(command: "clear", description: "Forget this chat's history"),
        .init(command: "stats", description: "Messages, tokens and cost of this chat"),
        .init(command: "model", description: "Show or switch the model"),
    ]

    /// Checks the token (getMe), switches to polling (deleteWebhook, keeping pending updates) and
    /// registers the commands. A rejected token is a `BotStartError`, never a retry loop.
    public static func connect(
        config: AssistantConfig, engine: ConversationEngine, store: Store, logger: Logger,
        http: HTTPClient? = nil, limits: TelegramLimits = TelegramLimits(),
        clock: any Clock<Duration> = ContinuousClock(), tick: Duration = .milliseconds(250),
        notifier: SystemdNotifier = SystemdNotifier(environment: [:]),
        maintenanceInterval: Duration = .seconds(3600), updateRetention: Duration = .seconds(86_400)
    ) async throws -> TelegramBot {
        guard let telegram = config.telegram else { throw BotStartError(description: "the Telegram configuration is missing") }
        let client = BotAPIClient(baseURL: telegram.apiURL, token: telegram.token, http: http ?? config.makeHTTPClient())
        let me: Telegram.User
        do {
            me = try await client.getMe()
            try await client.deleteWebhook()
            try await client.setMyCommands(commands)
        } catch TelegramError.unauthorized {
            throw BotStartError(
                description: "TELEGRAM_BOT_TOKEN was rejected by Telegram (check the token from @BotFather)", isConfiguration: true)
        } catch let error as TelegramError {
            throw BotStartError(description: "could not reach the Telegram Bot API at \(telegram.apiURL.host ?? "?"): \(error.errorType)")
        }
        let sender = TelegramSender(client: client, scheduler: SendScheduler(limits: limits, clock: clock), clock: clock, logger: logger) { old, new in
            try? store.migrateChat(from: old, to: new)
        }
        let context = BotContext(engine: engine, store: store, sender: sender, config: telegram, bot: me, logger: logger, clock: clock, tick: tick)
        var models: Logger.Metadata.Value = .array([.string(engine.settings.model)])
        if let fallback = engine.settings.fallbackModel { models = .array([.string(engine.settings.model), .string(fallback)]) }
        logger.info(
            "bot_started",
            metadata: [
                "bot_username": .string(me.username ?? ""), "models": models,
                "allowed_users": .string(telegram.allowedUserIDs.isEmpty ? "everyone" : "\(telegram.allowedUserIDs.count) listed"),
            ])
        if telegram.allowedUserIDs.isEmpty {
            logger.warning("open_to_everyone", metadata: ["hint": "ALLOWED_USER_IDS is empty: anyone who finds the bot can use it and spend your credits"])
        }
        return TelegramBot(
            context: context,
            poller: UpdatePoller(client: client, store: store, pollTimeout: telegram.pollTimeout, logger: logger, clock: clock),
            router: ChatRouter(context: context), notifier: notifier,
            maintenance: Maintenance(
                interval: maintenanceInterval, updateRetention: updateRetention,
                historyRetention: config.historyRetentionDays.map { .seconds($0 * 86_400) }))
    }

    /// Thrown when replies were still running when the shutdown grace period ended; they were cut
    /// off (each finalized as "(interrupted)"), which is an orderly end, not a failure.
    struct GraceExpired: Error {}

    /// What a service group's log shows for the bot: its name, nothing it holds.
    public var description: String { "TelegramBot(@\(context.bot.username ?? "?"))" }

    public func run() async throws {
        let status = StatusReporter(notifier: notifier, router: router, clock: context.clock)
        // The longest a healthy polling loop goes without a new round: a long poll that times out
        // at the HTTP level, then the longest backoff.
        let stallLimit = Duration.seconds(context.config.pollTimeout + 15 + 5) + UpdatePoller.maxBackoff + .seconds(5)
        let (maintenance, store, clock, logger) = (self.maintenance, context.store, context.clock, context.logger)
        // Services that run beside the bot for as long as it serves.
        try await withThrowingTaskGroup(of: Void.self) { beside in
            beside.addTask { await status.runWatchdog(stallLimit: stallLimit) }
            beside.addTask { await maintenance.run(store: store, clock: clock, logger: logger) }
            defer { beside.cancelAll() }
            try await serve(status: status)
        }
    }

    private func serve(status: StatusReporter) async throws {
        let router = self.router
        let poller = self.poller
        let store = context.store
        let notifier = self.notifier
        let grace = context.config.shutdownGrace
        let logger = context.logger
        do {
            try await withThrowingDiscardingTaskGroup { group in
                // First what a restart left open: unanswered updates, and replies cut off mid-way.
                for open in try store.openUpdates() {
                    let incoming = Incoming(
                        update: open.update, interruptedByRestart: open.status == .answering, pendingReply: open.pendingReply)
                    if let work = router.route(incoming) { group.addTask { await work() } }
                }
                // Then new updates. On shutdown polling stops at once; replies in progress finish.
                let (updates, continuation) = AsyncStream.makeStream(of: Incoming.self)
                group.addTask {
                    defer { continuation.finish() }
                    try await cancelWhenGracefulShutdown {
                        try await poller.run(onTurn: { status.turned() }, onPoll: { status.polled() }) { update in
                            continuation.yield(Incoming(update: update))
                        }
                    }
                }
                status.ready()
                for await incoming in updates {
                    if let work = router.route(incoming) { group.addTask { await work() } }
                }
                // Polling has stopped: a shutdown. Replies in flight get `grace` to finish.
                let inFlight = router.activeChats
                notifier.notify("STOPPING=1\nSTATUS=Shutting down, finishing \(inFlight) replies")
                logger.info("shutting_down", metadata: ["replies_in_flight": .stringConvertible(inFlight)])
                group.addTask {
                    let deadline = ContinuousClock.now + grace
                    while router.activeChats > 0, !Task.isCancelled {
                        guard ContinuousClock.now < deadline else { throw GraceExpired() }
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
        } catch is GraceExpired {
            logger.warning("shutdown_grace_expired", metadata: ["hint": "replies still running were cut off and marked (interrupted)"])
        }
    }
}

/// Tells systemd the bot is alive (`WATCHDOG=1`) and what it is doing (`STATUS=`).
///
/// The watchdog means "the process runs and its polling loop turns", not "Telegram answered": an
/// outage of Telegram or of the network must not get a healthy bot killed. So the pings come from
/// a timer of their own, and stop only when the loop has not started a round for longer than a
/// healthy loop ever takes (or when the process is frozen). The status goes out after a poll when
/// it has changed, so `systemctl status` is at most one poll behind.
final class StatusReporter: Sendable {
    private let notifier: SystemdNotifier
    private let router: ChatRouter
    private let clock: any Clock<Duration>
    private let stopwatch: Stopwatch
    private let last = Mutex<(turn: Duration, status: String)>((.zero, ""))

    init(notifier: SystemdNotifier, router: ChatRouter, clock: any Clock<Duration>) {
        self.notifier = notifier
        self.router = router
        self.clock = clock
        stopwatch = Stopwatch(clock)
    }


    /// The polling loop starts a round.
    func turned() {
        let now = stopwatch.elapsed
        last.withLock { $0.turn = now }
    }

    /// Pings every `watchdogInterval` (half of WatchdogSec=) until cancelled, while the polling loop
    /// has turned within `stallLimit`. Without a watchdog it returns at once.
    func runWatchdog(stallLimit: Duration) async {
        guard let interval = notifier.watchdogInterval else { return }
        while !Task.isCancelled {
            do {
                try await clock.sleep(for: interval)
            } catch {
                return
            }
            let sinceTurn = stopwatch.elapsed - last.withLock { $0.turn }
            if sinceTurn <= stallLimit { notifier.notify("WATCHDOG=1") }
        }
    }

    /// READY=1 with the first status.
    func ready() {
        let summary = self.summary
        last.withLock { $0.status = summary }
        notifier.notify("READY=1\nSTATUS=\(summary)")
    }

    func polled() {
        guard notifier.isEnabled else { return }
        let summary = self.summary
        let changed = last.withLock { last -> Bool in
            defer { last.status = summary }
            return summary != last.status
        }
        if changed { notifier.notify("STATUS=\(summary)") }
    }

    /// The one-line status `systemctl status` shows.
    var summary: String {
        let served = router.chatsServed
        let count = served >= ChatRouter.servedCapacity ? "\(served)+" : "\(served)"
        return "Polling; \(count) chat\(served == 1 ? "" : "s") served since start, \(router.activeChats) replying now"
    }
}
