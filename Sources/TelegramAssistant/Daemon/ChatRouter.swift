import Logging
import Synchronization

/// Sends each update to its chat's mailbox. A chat's messages are handled one at a time, in order;
/// different chats run concurrently. A chat with nothing queued holds no task and no memory.
public final class ChatRouter: Sendable {
    private struct Mailbox {
        var queue: [Incoming] = []
        /// A task is serving this chat.
        var running = false
        /// It has taken a message out of the queue and is answering it.
        var busy = false

        /// Messages waiting behind the one being answered (or about to be).
        var waiting: Int { busy ? queue.count : max(0, queue.count - 1) }
    }

    let context: BotContext
    let session: ChatSession
    /// Messages a chat may have waiting behind the one being answered.
    let maxQueued: Int
    private let mailboxes = Mutex<[Int64: Mailbox]>([:])
    private let served = Mutex<Set<Int64>>([])

    public init(context: BotContext, maxQueued: Int = 3) {
        self.context = context
        session = ChatSession(context: context, refused: RefusalMemory())
        self.maxQueued = maxQueued
    }

    /// Routes an update. Returns work to run as a new child task (the caller owns the task group),
    /// or nil when the update was handled at once or joined a chat that is already being served.
    public func route(_ incoming: Incoming) -> (@Sendable () async -> Void)? {
        let update = incoming.update
        context.logger.debug("update", metadata: ["update_id": .stringConvertible(update.update_id), "chat_id": .stringConvertible(update.chatID ?? 0)])

        if let stopped = update.stopped_message_generation {
            let found = context.stops.stop(chat: stopped.chat.id, draft: stopped.draft_id)
            context.logger.info("stop_requested", metadata: ["chat_id": .stringConvertible(stopped.chat.id), "found": .stringConvertible(found)])
            markHandled(update.update_id)
            return nil
        }
        guard let message = update.message else {
            markHandled(update.update_id)
            return nil
        }
        if let newID = message.migrate_to_chat_id {
            do {
                try context.store.migrateChat(from: message.chat.id, to: newID)
                context.logger.info("chat_migrated", metadata: ["chat_id": .stringConvertible(message.chat.id), "new_chat_id": .stringConvertible(newID)])
            } catch {
                context.logger.error("store_failed", metadata: ["error_type": "storage", "error": "\(error)"])
            }
            markHandled(update.update_id)
            return nil
        }
        if message.from?.is_bot ?? false || !isAddressedToUs(message) {
            markHandled(update.update_id)
            return nil
        }

        let chatID = message.chat.id
        served.withLock { _ = $0.insert(chatID) }
        enum Decision { case queued, start, overflow }
        let decision = mailboxes.withLock { boxes -> Decision in
            var box = boxes[chatID] ?? Mailbox()
            defer { boxes[chatID] = box }
            if box.running, box.waiting >= maxQueued { return .overflow }
            box.queue.append(incoming)
            if box.running { return .queued }
            box.running = true
            return .start
        }
        switch decision {
        case .queued:
            return nil
        case .start:
            return { [self] in await drain(chatID) }
        case .overflow:
            return { [self] in
                let chat = ChatHandle(id: chatID, isGroup: !message.chat.isPrivate, threadID: message.message_thread_id)
                await session.notify(chat, "I'm still answering your previous messages. Please wait a moment.", replyTo: message.message_id)
                markHandled(update.update_id)
            }
        }
    }

    /// Serves a chat until its mailbox is empty, or until shutdown cuts the bot off: then what has
    /// not started stays open in the database and is answered after the restart.
    private func drain(_ chatID: Int64) async {
        while let next = mailboxes.withLock({ boxes -> Incoming? in
            guard var box = boxes[chatID], !box.queue.isEmpty, !Task.isCancelled else {
                boxes[chatID] = nil  // idle (or stopping): nothing of this chat stays in memory
                return nil
            }
            let first = box.queue.removeFirst()
            box.busy = true
            boxes[chatID] = box
            return first
        }) {
            await session.handle(next)
        }
    }

    /// Chats being served right now.
    public var activeChats: Int { mailboxes.withLock { $0.count } }

    /// Chats served since start.
    public var chatsServed: Int { served.withLock { $0.count } }

    /// In private chats, everything. In groups: our commands, replies to our messages, @mentions.
    func isAddressedToUs(_ message: Telegram.Message) -> Bool {
        if message.chat.isPrivate { return true }
        let username = context.bot.username?.lowercased() ?? ""
        let text = message.text ?? ""
        if let command = Command(text) {
            return command.addressee.map { $0.lowercased() == username } ?? true
        }
        if message.reply_to_message?.from?.id == context.bot.id { return true }
        return !username.isEmpty && text.lowercased().contains("@\(username)")
    }

    private func markHandled(_ updateID: Int64) {
        try? context.store.setUpdateStatus(updateID, .handled)
    }
}
