import Foundation
import Support

/// The Telegram part of the configuration, needed only by `run` (read and checked by the app).
public struct TelegramConfig: Sendable {
    public var token: Secret
    public var apiURL: URL
    /// Empty: everyone may use the bot.
    public var allowedUserIDs: Set<Int64>
    public var adminUserIDs: Set<Int64>
    /// Models `/model NAME` may choose, besides the primary and fallback models.
    public var allowedModels: [String]
    public var userRateLimitPerMinute: Int
    public var maxConcurrentReplies: Int
    public var pollTimeout: Int
    /// How long replies in flight may finish after SIGTERM before they are cut off.
    public var shutdownGrace: Duration
    /// The most of a text file that goes into a turn (`TEXT_FILE_MAX_KB`); a longer file is cut.
    public var maxTextFileBytes: Int
    /// Telegram pushes updates here instead of being polled (`TELEGRAM_WEBHOOK_URL`, Cluster build).
    public var webhook: Webhook?

    /// Webhook mode: the public URL Telegram posts to, and the secret it sends with every post.
    public struct Webhook: Sendable {
        /// The public HTTPS URL; its path is the route the listener serves.
        public var url: URL
        /// `X-Telegram-Bot-Api-Secret-Token`: a request without it is refused, and nothing is stored.
        public var secret: Secret
        /// How many connections Telegram may open at once (`WEBHOOK_MAX_CONNECTIONS`, 1-100).
        public var maxConnections: Int

        public init(url: URL, secret: Secret, maxConnections: Int = 40) {
            self.url = url
            self.secret = secret
            self.maxConnections = maxConnections
        }
    }

    public init(
        token: Secret, apiURL: URL, allowedUserIDs: Set<Int64> = [], adminUserIDs: Set<Int64> = [], allowedModels: [String] = [],
        userRateLimitPerMinute: Int = 10, maxConcurrentReplies: Int = 32, pollTimeout: Int = 50, shutdownGrace: Duration = .seconds(20),
        maxTextFileBytes: Int = 100 * 1024
    ) {
        self.maxTextFileBytes = maxTextFileBytes
        self.token = token
        self.apiURL = apiURL
        self.allowedUserIDs = allowedUserIDs
        self.adminUserIDs = adminUserIDs
        self.allowedModels = allowedModels
        self.userRateLimitPerMinute = userRateLimitPerMinute
        self.maxConcurrentReplies = maxConcurrentReplies
        self.pollTimeout = pollTimeout
        self.shutdownGrace = shutdownGrace
    }
}
