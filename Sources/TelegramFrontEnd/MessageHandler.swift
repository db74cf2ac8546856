import Conversation
import Foundation
import Logging
import TelegramBotAPI

/// Decides what one accepted message of one chat gets: the rest of an answer a restart cut off, a
/// notice, a command's answer, or a model reply. The dispatcher has applied the access policy and
/// hands a chat's messages over one at a time, in order. The update is marked handled at the end,
/// unless shutdown cut off the delivery of an answer: then the next start delivers it.
public struct MessageHandler: Sendable {
    let pipeline: ReplyPipeline
    let commands: CommandHandler
    /// Downloads the files users send.
    let files: BotAPIClient
    let engine: ConversationEngine
    let intake: UpdateIntake
    let notices: NoticeSender
    let config: TelegramConfig
    let bot: Telegram.User
    let logger: Logger

    public init(
        pipeline: ReplyPipeline, engine: ConversationEngine, intake: UpdateIntake, notices: NoticeSender, files: BotAPIClient,
        config: TelegramConfig, bot: Telegram.User, logger: Logger
    ) {
        self.pipeline = pipeline
        self.files = files
        self.engine = engine
        self.intake = intake
        self.notices = notices
        self.config = config
        self.bot = bot
        self.logger = logger
        commands = CommandHandler(
            engine: engine, wording: .init(help: Self.help, noun: "chat", cleared: "History cleared. Let's start fresh."), logger: logger)
    }

    static let help = "I'm an AI assistant. Send me a message and I'll answer; I remember our conversation.\n\n"
        + CommandHandler.helpLines(noun: "chat")

    /// The commands shown in Telegram's menu: `/start` (Telegram's first message), then the shared ones.
    public static let menu: [Telegram.BotCommand] =
        [.init(command: "start", description: "What this bot does")]
        + CommandHandler.entries(noun: "chat").map { .init(command: $0.name, description: $0.menu) }

    func handle(_ incoming: Incoming) async {
        let update = incoming.update
        guard let message = update.message else { return }
        let chat = ChatHandle(id: message.chat.id, isGroup: !message.chat.isPrivate, threadID: message.message_thread_id)
        var logger = self.logger
        logger[metadataKey: "chat_id"] = .stringConvertible(chat.id)
        let closes = await respond(to: message, chat: chat, incoming: incoming, logger: logger)
        // A send found the group moved to a new id: its conversation follows.
        if chat.id != message.chat.id { await intake.migrate(from: message.chat.id, to: chat.id) }
        if closes { await intake.handled(update.update_id) }
    }

    /// Answers the message. Returns false when shutdown cut off the delivery of an answer, which
    /// the next start then delivers.
    private func respond(to message: Telegram.Message, chat: ChatHandle, incoming: Incoming, logger: Logger) async -> Bool {
        if incoming.interruptedByRestart {
            if let pending = incoming.pendingReply, let text = intake.savedFinal(pending) {
                return await pipeline.resume(text, pending, message: message, chat: chat, incoming: incoming, logger: logger)
            }
            await notices.send(chat, "I was restarted while answering your message. Please send it again.", replyTo: message.message_id)
            return true
        }
        if let document = message.document {
            return await read(document, message: message, chat: chat, incoming: incoming, logger: logger)
        }
        guard let rawText = message.text, !rawText.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            if message.hasNonTextContent {
                await notices.send(chat, "I can only read text messages.", replyTo: message.message_id)
            }
            return true
        }
        if let addressed = AddressedCommand(rawText) {
            let answer = await answer(addressed.command, chat: chat, user: message.from?.id, logger: logger)
            await notices.send(chat, answer, replyTo: message.message_id)
            return true
        }
        // In groups the model sees the message without the bot's @mention (Telegram's own entities),
        // and any message it replies to in front of it.
        let text = chat.isGroup ? message.text(withoutMentionsOf: bot.username ?? "") : rawText
        let turn = message.withReplyContext(text, botID: bot.id)
        let kinds = ["text"] + (turn != text ? ["reply_context"] : [])
        return await pipeline.reply(to: turn, message: message, chat: chat, incoming: incoming, logger: logger.with(inputKinds: kinds))
    }

    static let notATextFile = "I can read text messages and text files (plain text, Markdown, code, JSON, CSV, logs), but not this kind of file."

    /// A document: a text file becomes part of the user's turn (fenced, after the caption, cut at
    /// `TEXT_FILE_MAX_KB`); anything else gets a notice. Downloaded while handling, so a restart in
    /// the middle downloads it again and answers once.
    private func read(
        _ document: Telegram.Document, message: Telegram.Message, chat: ChatHandle, incoming: Incoming, logger: Logger
    ) async -> Bool {
        guard TextFile.isText(document) else {
            await notices.send(chat, Self.notATextFile, replyTo: message.message_id)
            return true
        }
        let bytes: [UInt8]
        let stated: Int?
        do {
            // One byte past the limit tells a long file from one that fits; the rest is never read,
            // so a chat full of 20 MB files costs no more memory than that.
            let file = try await files.getFile(document.file_id)
            stated = file.file_size
            bytes = try await files.download(file, prefix: config.maxTextFileBytes + 1)
        } catch TelegramError.fileTooBig {
            await notices.send(chat, "This file is too big: bots can download files of up to 20 MB.", replyTo: message.message_id)
            return true
        } catch {
            let errorType = (error as? TelegramError)?.errorType ?? "telegram_network"
            logger.warning("file_download_failed", metadata: ["error_type": .string(errorType)])
            await notices.send(chat, "I couldn't download that file from Telegram. Please send it again.", replyTo: message.message_id)
            return true
        }
        guard let file = TextFile(name: document.file_name ?? "file", bytes: bytes, limit: config.maxTextFileBytes, statedSize: stated) else {
            await notices.send(chat, "That file isn't UTF-8 text, so I can't read it.", replyTo: message.message_id)
            return true
        }
        let withFile = file.turn(caption: message.caption)
        let turn = message.withReplyContext(withFile, botID: bot.id)
        let kinds = (message.caption?.isEmpty == false ? ["text"] : []) + ["text_file"] + (turn != withFile ? ["reply_context"] : [])
        return await pipeline.reply(to: turn, message: message, chat: chat, incoming: incoming, logger: logger.with(inputKinds: kinds))
    }

    /// A command's answer, with Telegram's policy: any allowed model in a private chat, only admins
    /// switch it in groups, and bot-wide totals only in an admin's private chat.
    func answer(_ command: Command, chat: ChatHandle, user: Int64?, logger: Logger) async -> String {
        let conversationID: Int64
        do {
            conversationID = try await engine.conversation(kind: UpdateIntake.conversationKind, externalID: chat.id).id
        } catch {
            logger.error("store_failed", metadata: ["error_type": "storage", "error": "\(error)"])
            return ReplyOutcome.storageFailed.notice ?? ""
        }
        let isAdmin = user.map(config.adminUserIDs.contains) ?? false
        let permissions = CommandHandler.Permissions(
            allowedModels: engine.settings.allowedModels(adding: config.allowedModels), maySwitchModel: !chat.isGroup || isAdmin,
            totalsOfKind: isAdmin && !chat.isGroup ? UpdateIntake.conversationKind : nil)
        return await commands.handle(command, conversationID: conversationID, permissions: permissions)
    }
}

extension Logger {
    /// This logger with what the user's turn is made of (`input_kinds`: `text`, `text_file`,
    /// `reply_context`), for the `reply` and `model_call` lines of that turn.
    func with(inputKinds kinds: [String]) -> Logger {
        var logger = self
        logger[metadataKey: "input_kinds"] = .array(kinds.map { .string($0) })
        return logger
    }
}
