import Logging
import Synchronization

/// An update on its way through the bot, with when it arrived.
public struct Incoming: Sendable {
    public var update: Telegram.Update
    public var receivedAt: ContinuousClock.Instant
    /// Read back from the database after a restart that interrupted its reply.
    public var interruptedByRestart: Bool
    /// The complete answer whose delivery the restart interrupted, if it got that far.
    public var pendingReply: PendingReply?

    public init(
        update: Telegram.Update, receivedAt: ContinuousClock.Instant = .now, interruptedByRestart: Bool = false,
        pendingReply: PendingReply? = nil
    ) {
        self.update = update
        self.receivedAt = receivedAt
        self.interruptedByRestart = interruptedByRestart
        self.pendingReply = pendingReply
    }
}

/// Everything the bot's chats share.
public struct BotContext: Sendable {
    public let engine: ConversationEngine
    public let store: Store
    public let sender: TelegramSender
    public let drafts: DraftSupport
    public let config: TelegramConfig
    public let bot: Telegram.User
    public let replies: AsyncSemaphore
    public let stops: StopRegistry
    public let logger: Logger
    public let clock: any Clock<Duration>
    /// How often a streaming reply looks for new text to show.
    public let tick: Duration

    public init(
        engine: ConversationEngine, store: Store, sender: TelegramSender, config: TelegramConfig, bot: Telegram.User,
        logger: Logger, clock: any Clock<Duration> = ContinuousClock(), tick: Duration = .milliseconds(250)
    ) {
        self.engine = engine
        self.store = store
        self.sender = sender
        drafts = DraftSupport()
        self.config = config
        self.bot = bot
        replies = AsyncSemaphore(permits: config.maxConcurrentReplies)
        stops = StopRegistry()
        self.logger = logger
        self.clock = clock
        self.tick = tick
    }

    /// Models `/model NAME` may choose.
    var allowedModels: [String] {
        var models = [engine.settings.model]
        if let fallback = engine.settings.fallbackModel { models.append(fallback) }
        for model in config.allowedModels where !models.contains(model) { models.append(model) }
        return models
    }

    func isAdmin(_ user: Int64?) -> Bool {
        user.map(config.adminUserIDs.contains) ?? false
    }
}

/// The replies that can be stopped right now, by chat and draft id.
public final class StopRegistry: Sendable {
    private struct Key: Hashable {
        var chat: Int64
        var draft: Int64
    }
    private let signals = Mutex<[Key: ChangeSignal]>([:])

    public init() {}

    func register(chat: Int64, draft: Int64, _ signal: ChangeSignal) {
        signals.withLock { $0[Key(chat: chat, draft: draft)] = signal }
    }

    func remove(chat: Int64, draft: Int64) {
        signals.withLock { _ = $0.removeValue(forKey: Key(chat: chat, draft: draft)) }
    }

    /// Stops the reply with that draft (a long answer's later parts use the following draft ids).
    @discardableResult
    func stop(chat: Int64, draft: Int64) -> Bool {
        let signal = signals.withLock { signals in
            signals.first { $0.key.chat == chat && (0..<64).contains(draft &- $0.key.draft) }?.value
        }
        signal?.notify()
        return signal != nil
    }
}
