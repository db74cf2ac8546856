import AssistantStore
import TelegramBotAPI

/// An update on its way through the bot, with when it arrived.
public struct Incoming: Sendable {
    public var update: Telegram.Update
    /// When it arrived, on the bot's stopwatch.
    public var receivedAt: Duration
    /// Read back from the database after a restart that interrupted its reply.
    var interruptedByRestart: Bool
    /// The complete answer whose delivery the restart interrupted, if it got that far.
    public var pendingReply: PendingReply?
    /// The other parts of an album (same `media_group_id`), answered with this one as one turn.
    var albumParts: [Telegram.Update] = []

    /// This update and its album's other parts: their ledger rows move together.
    var updateIDs: [Int64] { [update.update_id] + albumParts.map(\.update_id) }

    public init(update: Telegram.Update, receivedAt: Duration, interruptedByRestart: Bool = false, pendingReply: PendingReply? = nil) {
        self.update = update
        self.receivedAt = receivedAt
        self.interruptedByRestart = interruptedByRestart
        self.pendingReply = pendingReply
    }
}
