import Foundation
import TelegramBotAPI

extension Telegram.Message {
    /// The longest quoted text that goes into a turn; longer is cut with "…".
    static let maxReplyContext = 1_000

    /// `text` as the model should read it: when the user replies to an earlier message (theirs,
    /// someone else's or the bot's), the part they quoted, or else that message's words, goes in
    /// front, marked as what it is. It becomes part of the stored turn, so later requests keep it.
    func withReplyContext(_ text: String, botID: Int64) -> String {
        (replyContext(quote?.text ?? reply_to_message?.text ?? reply_to_message?.caption, botID: botID) ?? "") + text
    }

    /// The line that goes in front of the turn for a reply: `words` (quoted, cut at
    /// `maxReplyContext`) and whose `what` they are. Nil when this is no reply or there are no words.
    func replyContext(_ words: String?, botID: Int64, what: String = "message") -> String? {
        guard let replied = reply_to_message, let words = words?.trimmingCharacters(in: .whitespacesAndNewlines), !words.isEmpty
        else { return nil }
        let whose =
            replied.from?.id == botID
            ? "your earlier answer" : replied.from.map { "\($0.first_name)'s \(what)" } ?? "an earlier \(what)"
        let clipped = words.count > Self.maxReplyContext ? String(words.prefix(Self.maxReplyContext)) + "…" : words
        return "[In reply to \(whose): \"\(clipped)\"]\n\n"
    }
}
