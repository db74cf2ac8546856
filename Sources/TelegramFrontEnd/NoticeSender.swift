import Logging
import TelegramBotAPI

/// Short messages that must arrive (a refusal, a command's answer, a notice), through the same
/// scheduler as replies.
public struct NoticeSender: Sendable {
    let sender: TelegramSender
    let logger: Logger

    public init(sender: TelegramSender, logger: Logger) {
        self.sender = sender
        self.logger = logger
    }

    /// Sends `text`, quoting the message it answers in groups, and in private chats too when
    /// `quoteInPrivate`. A failure is logged, never thrown: there is nothing else to tell.
    func send(_ chat: ChatHandle, _ text: String, replyTo: Int, quoteInPrivate: Bool = false) async {
        await send(chat, FormattedText(text: text), replyTo: replyTo, quoteInPrivate: quoteInPrivate)
    }

    func send(_ chat: ChatHandle, _ text: FormattedText, replyTo: Int, quoteInPrivate: Bool = false) async {
        do {
            try await sender.sendFinal(
                chat, text, replyTo: chat.isGroup || quoteInPrivate ? replyTo : nil, metrics: ReplyMetrics())
        } catch let error as TelegramError {
            logger.warning("send_failed", metadata: ["chat_id": .stringConvertible(chat.id), "error_type": .string(error.errorType)])
        } catch {}
    }
}
