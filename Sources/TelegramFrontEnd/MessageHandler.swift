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
    /// Makes the user's turn out of a message: text, photos, voice, files, replies.
    let reader: TurnReader
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
        reader = TurnReader(files: files, engine: engine, config: config, bot: bot)
        self.engine = engine
        self.intake = intake
        self.notices = notices
        self.config = config
        self.bot = bot
        self.logger = logger
        commands = CommandHandler(
            engine: engine,
            wording: .init(
                help: Self.help(vision: engine.settings.vision, voice: engine.transcriptionLimit != nil), noun: "chat",
                cleared: "History cleared. Let's start fresh."),
            logger: logger)
    }

    /// What `/help` and `/start` say: what the bot reads (as configured), then the commands.
    static func help(vision: Bool, voice: Bool) -> String {
        let kinds = (vision ? ["photos"] : []) + (voice ? ["voice messages"] : []) + ["text files"]
        let list = kinds.count == 1 ? kinds[0] : kinds.dropLast().joined(separator: ", ") + " and " + kinds[kinds.count - 1]
        return "I'm an AI assistant. Send me a message and I'll answer; I remember our conversation. I can also read \(list).\n\n"
            + CommandHandler.helpLines(noun: "chat")
    }

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
        guard await intake.mayAnswer(chat.id, updateIDs: incoming.updateIDs) else { return }
        let closes = await respond(to: message, chat: chat, incoming: incoming, logger: logger)
        // A send found the group moved to a new id: its conversation follows.
        if chat.id != message.chat.id { await intake.migrate(from: message.chat.id, to: chat.id) }
        if closes { await intake.handled(incoming.updateIDs) }
    }

    /// Answers the message. Returns whether the update still has to be marked handled: not when
    /// shutdown cut off the delivery of an answer (the next start delivers it), nor when delivering
    /// the answer's last part marked it already.
    private func respond(to message: Telegram.Message, chat: ChatHandle, incoming: Incoming, logger: Logger) async -> Bool {
        if incoming.interruptedByRestart {
            if let pending = incoming.pendingReply, let text = intake.savedFinal(pending) {
                return await pipeline.resume(text, pending, message: message, chat: chat, incoming: incoming, logger: logger)
            }
            await notices.send(chat, "I was restarted while answering your message. Please send it again.", replyTo: message.message_id)
            return true
        }
        if let rawText = message.text, let addressed = AddressedCommand(rawText) {
            let answer = await answer(addressed.command, chat: chat, user: message.from?.id, logger: logger)
            await notices.send(chat, answer, replyTo: message.message_id)
            return true
        }
        let album = incoming.albumParts.compactMap(\.message)
        let reading: TurnReader.Reading
        if album.isEmpty, let text = reader.readText(message, chat: chat) {
            reading = text
        } else {
            reading = await reader.read(message, album: album, chat: chat, logger: logger)
        }
        switch reading {
        case .nothing:
            return true
        case .deferred:
            return false
        case .notice(let notice):
            await notices.send(chat, notice, replyTo: message.message_id)
            return true
        case .turn(let turn, let facts, let transcript):
            return await pipeline.reply(
                to: turn, transcript: transcript, message: message, chat: chat, incoming: incoming, logger: logger.with(facts))
        }
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
