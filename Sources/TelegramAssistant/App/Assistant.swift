import AssistantStore
import ClusterServer
import Conversation
import CurlHTTP
import Foundation
import Logging
import OpenAIClient
import PostgresStore
import Support
import TelegramBotAPI
import TelegramFrontEnd
import TerminalFrontEnd

/// The composition root: the one place that builds the object graph, for `run`, `chat` and
/// `check`, and for the tests and benchmarks, which change only what `Overrides` lets them.
public struct Assistant: Sendable {
    /// What tests and benchmarks replace; the defaults are production's.
    public struct Overrides: Sendable {
        /// The one HTTP client (one event thread, one connection pool); made from the config when nil.
        public var http: HTTPClient?
        /// The database; opened at `DATABASE_PATH` when nil.
        public var store: (any Store)?
        /// The clock of every wait and time line (cadence, budgets, backoff, deadlines); the HTTP
        /// client's (`HTTPClient.clock`, sleeps kept by its event thread) when nil.
        public var clock: (any Clock<Duration>)?
        /// The clock of the model calls' backoff waits (a test's recording clock skips them).
        public var modelRetryClock: (any Clock<Duration>)?
        /// Jitter for every backoff: a number in 0..<1.
        public var random: @Sendable () -> Double = { Double.random(in: 0..<1) }
        /// The model calls' deadlines; the config's when nil.
        public var timeouts: LLMTimeouts?
        /// Telegram's flood limits (tests scale them up on both sides).
        public var limits = TelegramLimits()
        /// How often a streaming reply looks for new text to show.
        public var tick: Duration = .milliseconds(250)
        public var notifier = SystemdNotifier(environment: [:])
        public var maintenanceInterval: Duration = .seconds(3600)
        public var updateRetention: Duration = .seconds(86_400)
        /// How long an album stays open after its latest part.
        public var albumSettle: Duration = .milliseconds(600)
        /// Told of every Bot API call (the Cluster build's /metrics).
        public var telegramObserver: BotAPIClient.Observer?
        /// Replicas on PostgreSQL: how often the leader checks that it still holds the lock, and a
        /// standby tries to take it.
        public var leadershipCheck: Duration = .seconds(2)
        /// Replicas on PostgreSQL: `REPLICA_TIMEOUT_SECONDS` when nil.
        public var replicaTimeout: Duration?

        public init() {}
    }

    public let config: AssistantConfig
    public let store: any Store
    public let engine: ConversationEngine
    public let logger: Logger
    /// Shared by Telegram and the model: one event thread and one connection pool per process.
    public let http: HTTPClient
    /// Every wait and time line: `Overrides.clock`, or the HTTP client's.
    let clock: any Clock<Duration>
    let overrides: Overrides

    /// Opens the database and wires the engine. Throws `StoreError` with a readable message.
    public init(config: AssistantConfig, logger: Logger, overrides: Overrides = Overrides()) throws {
        let http = overrides.http ?? config.makeHTTPClient()
        self.http = http
        self.config = config
        self.logger = logger
        self.overrides = overrides
        let clock = overrides.clock ?? http.clock
        self.clock = clock
        store = try overrides.store ?? SQLiteStore(path: config.databasePath)
        let runner = CompletionRunner(
            client: Self.modelClient(config, http: http), policy: RetryPolicy(random: overrides.random),
            timeouts: overrides.timeouts ?? config.timeouts, clock: overrides.modelRetryClock ?? clock,
            deadlineClock: clock)
        let transcriber = config.transcription.map { transcription in
            Transcriber(
                client: TranscriptionClient(
                    baseURL: transcription.baseURL, apiKey: transcription.apiKey, model: transcription.model, http: http,
                    policy: RetryPolicy(random: overrides.random), clock: overrides.modelRetryClock ?? clock,
                    timeout: max(config.timeouts.firstByte, .seconds(30))),
                maxSeconds: transcription.maxSeconds, pricePerMinute: transcription.pricePerMinute, clock: clock)
        }
        engine = ConversationEngine(settings: EngineSettings(config), store: store, runner: runner, transcriber: transcriber, logger: logger)
    }

    /// Opens the configured database (PostgreSQL with `DATABASE_URL`, else SQLite at
    /// `DATABASE_PATH`, unless `overrides` brings one) and wires the engine.
    public static func open(config: AssistantConfig, logger: Logger, overrides: Overrides = Overrides()) async throws -> Assistant {
        var overrides = overrides
        if overrides.store == nil { overrides.store = try await openStore(config, logger: logger) }
        return try Assistant(config: config, logger: logger, overrides: overrides)
    }

    /// The configured database, migrated. Throws `StoreError` with a readable message.
    static func openStore(_ config: AssistantConfig, logger: Logger) async throws -> any Store {
        guard let location = config.postgres else { return try SQLiteStore(path: config.databasePath) }
        #if Cluster
            return try await PostgresStore.open(location, logger: logger)
        #else
            throw StoreError(description: "DATABASE_URL (\(location)) needs the Cluster build: swift build -c release --traits Cluster")
        #endif
    }

    /// Where the database is, for logs and reports (never with a password).
    static func databaseName(_ config: AssistantConfig) -> String {
        config.postgres?.description ?? config.databasePath
    }

    /// The chat-completions client for the configured provider.
    static func modelClient(_ config: AssistantConfig, http: HTTPClient) -> ChatCompletionsClient {
        ChatCompletionsClient(
            baseURL: config.baseURL, apiKey: config.apiKey, appURL: config.appURL, appName: config.appName, http: http,
            transportTimeout: max(config.timeouts.firstByte, config.timeouts.idle) + .seconds(5))
    }

    /// A logger that writes JSON lines to `sink` at the configured level.
    public static func makeLogger(label: String, level: Logger.Level, sink: LogSink) -> Logger {
        Logger(label: label) { label in JSONLogHandler(label: label, level: level, sink: sink) }
    }

    #if Cluster
        /// The same, whose records also become `metrics` (at `info` and above, whatever `level`).
        public static func makeLogger(label: String, level: Logger.Level, sink: LogSink, metrics: BotMetrics) -> Logger {
            Logger(label: label) { label in
                MultiplexLogHandler([JSONLogHandler(label: label, level: level, sink: sink), MetricsLogHandler(metrics: metrics)])
            }
        }
    #endif

    // MARK: The Telegram bot

    /// Checks the token (getMe), switches to polling (deleteWebhook, keeping pending updates),
    /// registers the commands, and builds the bot's services. A rejected token is a
    /// `BotStartError`, never a retry loop.
    public func connectBot() async throws -> TelegramBot {
        guard let telegram = config.telegram else { throw BotStartError(description: "the Telegram configuration is missing") }
        let client = BotAPIClient(baseURL: telegram.apiURL, token: telegram.token, http: http, observer: overrides.telegramObserver)
        let me: Telegram.User
        do {
            me = try await client.getMe()
            // Polling needs the webhook gone (updates waiting for it stay); webhook mode sets it
            // once the bot is ready to take updates (`UpdateIntake`).
            if telegram.webhook == nil { try await client.deleteWebhook() }
            try await client.setMyCommands(MessageHandler.menu)
        } catch TelegramError.unauthorized {
            throw BotStartError(
                description: "TELEGRAM_BOT_TOKEN was rejected by Telegram (check the token from @BotFather)", isConfiguration: true)
        } catch let error as TelegramError {
            throw BotStartError(description: "could not reach the Telegram Bot API at \(telegram.apiURL.host ?? "?"): \(error.errorType)")
        }
        logStart(me, telegram)

        let stopwatch = Stopwatch(clock)
        let scheduler = SendScheduler(limits: overrides.limits, clock: clock)
        let sender = TelegramSender(
            client: client, scheduler: scheduler, clock: clock, logger: logger,
            backoff: Backoff(base: .milliseconds(500), maximum: .seconds(30), random: overrides.random))
        let notices = NoticeSender(sender: sender, logger: logger)
        let mailboxes = Mailboxes()
        let status = StatusReporter(
            notifier: overrides.notifier, mailboxes: mailboxes, stallLimit: StatusReporter.stallLimit(pollTimeout: telegram.pollTimeout),
            clock: clock)
        let (updates, output) = AsyncStream.makeStream(of: Incoming.self)
        var leases: ChatLeases?
        var leadPolling: (@Sendable (@escaping @Sendable () async throws -> Void) async throws -> Void)?
        #if Cluster
            // Replicas on one PostgreSQL: every one answers the chats it leases; one at a time polls.
            if let shared = store as? PostgresStore {
                leases = ChatLeases(
                    store: shared, replica: Self.replicaName(), timeout: overrides.replicaTimeout ?? config.replicaTimeout, scheduler: scheduler, clock: clock, logger: logger)
                if telegram.webhook == nil {
                    leadPolling = Replica.polling(shared.location, logger: logger, checkEvery: overrides.leadershipCheck, clock: clock)
                }
            }
        #endif
        let intake = UpdateIntake(
            client: client, store: store, engine: engine, pollTimeout: telegram.pollTimeout, status: status, output: output,
            stopwatch: stopwatch, clock: clock, logger: logger, random: overrides.random, webhook: telegram.webhook, leases: leases,
            leadPolling: leadPolling)
        let stops = StopRegistry()
        let pipeline = ReplyPipeline(
            engine: engine, permits: AsyncSemaphore(permits: telegram.maxConcurrentReplies), stops: stops, sender: sender,
            drafts: DraftSupport(), intake: intake, notices: notices, tick: overrides.tick, clock: clock, stopwatch: stopwatch)
        let handler = MessageHandler(
            pipeline: pipeline, engine: engine, intake: intake, notices: notices, files: client, config: telegram, bot: me,
            logger: logger)
        let dispatcher = ChatDispatcher(
            updates: updates, policy: AccessPolicy(config: telegram, bot: me, clock: clock), handler: handler, intake: intake,
            stops: stops, notices: notices, notifier: overrides.notifier, mailboxes: mailboxes,
            albums: Albums(settle: overrides.albumSettle, clock: clock, stopwatch: stopwatch), logger: logger)
        let maintenance = Maintenance(
            store: store, interval: overrides.maintenanceInterval, updateRetention: overrides.updateRetention,
            historyRetention: config.historyRetentionDays.map { .seconds($0 * 86_400) }, clock: clock, logger: logger)
        return TelegramBot(
            username: me.username ?? "?", intake: intake, dispatcher: dispatcher, status: status, maintenance: maintenance, leases: leases,
            grace: telegram.shutdownGrace, executor: http.executor)
    }

    /// This process's name among replicas: the host, the process id, and a random suffix (a
    /// process id comes back after a reboot; a lease of the old process must not pass for ours).
    static func replicaName() -> String {
        var host = [CChar](repeating: 0, count: 256)
        let name = gethostname(&host, host.count) == 0 ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "host"
        return "\(name)-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    }

    private func logStart(_ me: Telegram.User, _ telegram: TelegramConfig) {
        var models: Logger.Metadata.Value = .array([.string(engine.settings.model)])
        if let fallback = engine.settings.fallbackModel { models = .array([.string(engine.settings.model), .string(fallback)]) }
        logger.info(
            "bot_started",
            metadata: [
                "bot_username": .string(me.username ?? ""), "models": models, "database": .string(Self.databaseName(config)),
                "allowed_users": .string(telegram.allowedUserIDs.isEmpty ? "everyone" : "\(telegram.allowedUserIDs.count) listed"),
            ])
        if telegram.allowedUserIDs.isEmpty {
            logger.warning("open_to_everyone", metadata: ["hint": "ALLOWED_USER_IDS is empty: anyone who finds the bot can use it and spend your credits"])
        }
    }

    // MARK: The terminal chat and the checkup

    /// The terminal chat on the last terminal conversation (a new one when `fresh`).
    func terminalChat(fresh: Bool, write: @escaping @Sendable (String) -> Void) async throws -> TerminalChat {
        try await TerminalChat(engine: engine, fresh: fresh, logger: logger, write: write)
    }
}

extension EngineSettings {
    /// The engine's part of the configuration.
    init(_ config: AssistantConfig) {
        self.init(
            model: config.model, fallbackModel: config.fallbackModel, systemPrompt: config.systemPrompt,
            temperature: config.temperature, maxOutputTokens: config.maxOutputTokens, maxHistoryMessages: config.maxHistoryMessages,
            contextTokens: config.contextTokens, inputPricePerMillion: config.inputPricePerMillion,
            outputPricePerMillion: config.outputPricePerMillion, summarizeHistory: config.summarizeHistory)
        vision = config.vision
        maxImageBytes = config.maxImageBytes
        maxImageSide = config.maxImageSide
        transcriptionPricePerMinute = config.transcription?.pricePerMinute ?? 0
    }
}
