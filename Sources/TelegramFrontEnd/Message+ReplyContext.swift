import Foundation
import TelegramBotAPI

extension Telegram.Message {
    /// The longest quoted text that goes into a turn; longer is cut with "…".
    static let maxReplyContext = 1_000

    /// `text` as the model should read it: when the user replies to an earlier message (theirs,
    /// someone else's or the bot's), the part they quoted, or else that message's words, goes in
    /// front, marked as what it is. It becomes part of the stored turn, so later requests keep it.
    func withReplyContext(_ text: String, botID: Int64) -> String {
        guard let replied = reply_to_message,
            let words = (quote?.text ?? replied.text ?? replied.caption)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !words.isEmpty
        else { return text }
        let whose = replied.from?.id == botID ? "your earlier answer" : replied.from.map { "\($0.first_name)'s message" } ?? "an earlier message"
        let clipped = words.count > Self.maxReplyContext ? String(words.prefix(Self.maxReplyContext)) + "…" : words
        return "[In reply to \(whose): \"\(clipped)\"]\n\n\(text)"
    }
}
