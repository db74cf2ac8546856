import Foundation
import Logging
import ServiceLifecycle

/// Why the bot could not start; the message is for the operator.
public struct BotStartError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// The Telegram daemon as a service: resumes updates left open by a restart, then polls and
/// routes updates to their chats until shut down.
public struct TelegramBot: Service {
    public let context: BotContext
    let poller: UpdatePoller
    let router: ChatRouter

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
        http: HTTPStreamingClient = HTTPStreamingClient(), limits: TelegramLimits = TelegramLimits(),
        clock: any Clock<Duration> = ContinuousClock(), tick: Duration = .milliseconds(250)
    ) async throws -> TelegramBot {
        guard let telegram = config.telegram else { throw BotStartError(description: "the Telegram configuration is missing") }
        let client = BotAPIClient(baseURL: telegram.apiURL, token: telegram.token, http: http)
        let me: Telegram.User
        do {
            me = try await client.getMe()
            try await client.deleteWebhook()
            try await client.setMyCommands(commands)
        } catch TelegramError.unauthorized {
            throw BotStartError(description: "TELEGRAM_BOT_TOKEN was rejected by Telegram (check the token from @BotFather)")
        } catch let error as TelegramError {
            throw BotStartError(description: "could not reach the Telegram Bot API at \(telegram.apiURL.host ?? "?"): \(error.errorType)")
        }
        let sender = TelegramSender(client: client, scheduler: SendScheduler(limits: limits, clock: clock), clock: clock) { old, new in
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
            router: ChatRouter(context: context))
    }

    public func run() async throws {
        let router = self.router
        let poller = self.poller
        let store = context.store
        try? store.pruneHandledUpdates()
        try await withThrowingDiscardingTaskGroup { group in
            // First what a restart left open: unanswered updates, and replies cut off mid-way.
            for open in try store.openUpdates() {
                let incoming = Incoming(update: open.update, interruptedByRestart: open.status == .answering)
                if let work = router.route(incoming) { group.addTask { await work() } }
            }
            // Then new updates. On shutdown polling stops at once; replies in progress finish.
            let (updates, continuation) = AsyncStream.makeStream(of: Incoming.self)
            group.addTask {
                defer { continuation.finish() }
                try await cancelWhenGracefulShutdown {
                    try await poller.run { update in continuation.yield(Incoming(update: update)) }
                }
            }
            for await incoming in updates {
                if let work = router.route(incoming) { group.addTask { await work() } }
            }
        }
    }
}
