import Logging
import TelegramBotAPI

/// Decides what an incoming message costs before anything is queued: messages from bots and group
/// chatter not addressed to the bot are dropped; strangers and people over their rate limit get at
/// most one notice per period (commands count too), so a flood from one person never delays
/// anyone else's answers.
public struct AccessPolicy: Sendable {
    enum Decision: Equatable {
        /// Not for the bot (another bot, group chatter, an empty update): nothing to say.
        case ignore
        /// Answer it with this text and nothing else (a refusal, the rate limit, a hint); nil
        /// when this person was told recently.
        case notice(String?, errorType: String)
        /// Queue it for its chat.
        case accept
    }

    let config: TelegramConfig
    let bot: Telegram.User
    let rateLimiter: UserRateLimiter
    let refusals: NoticeMemory
    let slowDowns: NoticeMemory

    public init(config: TelegramConfig, bot: Telegram.User, clock: any Clock<Duration>) {
        self.config = config
        self.bot = bot
        rateLimiter = UserRateLimiter(perMinute: config.userRateLimitPerMinute, clock: clock)
        refusals = NoticeMemory(period: .seconds(3600), clock: clock)
        slowDowns = NoticeMemory(period: .seconds(60), clock: clock)
    }

    static let privateBot = "Sorry, this bot is private."
    static func mentionHint(_ username: String) -> String {
        "Yes? Write your question after the mention, like “@\(username) what's a good name for a cat?”"
    }

    func decide(_ message: Telegram.Message) -> Decision {
        if message.from?.is_bot ?? false { return .ignore }
        guard isAddressedToUs(message) else { return .ignore }
        let person = message.from?.id ?? message.chat.id
        if !config.allowedUserIDs.isEmpty, !(message.from.map { config.allowedUserIDs.contains($0.id) } ?? false) {
            return .notice(refusals.shouldTell(person) ? Self.privateBot : nil, errorType: "access_denied")
        }
        if let wait = rateLimiter.admit(person) {
            let seconds = max(1, Int(wait.seconds.rounded(.up)))
            let notice = "You're sending messages too fast. Please try again in \(seconds) s."
            return .notice(slowDowns.shouldTell(person) ? notice : nil, errorType: "user_rate_limited")
        }
        if !message.chat.isPrivate, message.text != nil || message.caption != nil, AddressedCommand(message.text ?? "") == nil,
            message.text(withoutMentionsOf: bot.username ?? "").isEmpty, !message.hasNonTextContent
        {
            return .notice(Self.mentionHint(bot.username ?? "bot"), errorType: "empty_mention")
        }
        return .accept
    }

    /// In private chats, everything. In groups: our commands, replies to our messages, and
    /// @mentions of us in the text or a caption (Telegram's `mention` entities, never a substring).
    func isAddressedToUs(_ message: Telegram.Message) -> Bool {
        if message.chat.isPrivate { return true }
        let username = bot.username ?? ""
        if let command = AddressedCommand(message.text ?? "") {
            return command.addressee.map { $0.lowercased() == username.lowercased() } ?? true
        }
        if message.reply_to_message?.from?.id == bot.id { return true }
        return message.mentions(username)
    }
}
