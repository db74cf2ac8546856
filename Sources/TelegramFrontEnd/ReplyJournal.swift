import TelegramBotAPI

/// Where a reply's final text and its delivery progress are written down, so that a restart can
/// deliver the rest of an answer without asking the model again.
struct ReplyJournal: Sendable {
    /// The final text is known: called before its first part is sent, with the parts already sent
    /// while streaming and the message being edited, if any.
    let finalReady: @Sendable (_ text: FormattedText, _ partsSent: Int, _ streamMessage: (messageID: Int, part: Int)?) async -> Void
    /// The first `count` parts are delivered.
    let partsSent: @Sendable (_ count: Int) async -> Void

    init(
        finalReady: @escaping @Sendable (FormattedText, Int, (messageID: Int, part: Int)?) async -> Void,
        partsSent: @escaping @Sendable (Int) async -> Void
    ) {
        self.finalReady = finalReady
        self.partsSent = partsSent
    }
}
