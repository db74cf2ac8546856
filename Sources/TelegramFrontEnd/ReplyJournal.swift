import TelegramBotAPI

/// Where a reply's final text and its delivery progress are written down, so that a restart can
/// deliver the rest of an answer without asking the model again.
struct ReplyJournal: Sendable {
    /// The final text is known: called before its first part is sent, with the parts already sent
    /// while streaming and the message being edited, if any.
    let finalReady: @Sendable (_ text: FormattedText, _ partsSent: Int, _ streamMessage: (messageID: Int, part: Int)?) async -> Void
    /// The first `count` parts are delivered (not the last one: see `delivered`).
    let partsSent: @Sendable (_ count: Int) async -> Void
    /// Every part is delivered: the update needs nothing more. One commit instead of "the last part
    /// is sent" and then "handled"; a crash between the two would have sent nothing twice either.
    let delivered: @Sendable () async -> Void

    init(
        finalReady: @escaping @Sendable (FormattedText, Int, (messageID: Int, part: Int)?) async -> Void,
        partsSent: @escaping @Sendable (Int) async -> Void, delivered: @escaping @Sendable () async -> Void
    ) {
        self.finalReady = finalReady
        self.partsSent = partsSent
        self.delivered = delivered
    }
}
