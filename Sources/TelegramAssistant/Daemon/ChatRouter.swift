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
        /// A skipped message was already answered with the overflow notice in this busy period.
        var toldOverflow = false

        /// Messages waiting behind the one being answered (or about to be).
        var waiting: Int { busy ? queue.count : max(0, queue.count - 1) }
    }

    let context: BotContext
    let session: ChatSession
    let policy: AccessPolicy
    /// Messages a chat may have waiting behind the one being answered.
    let maxQueued: Int
    private let mailboxes = Mutex<[Int64: Mailbox]>([:])
    private let served = Mutex<Set<Int64>>([])

    public init(context: BotContext, maxQueued: Int = 3) {
        self.context = context
        session = ChatSession(context: context)
        policy = AccessPolicy(config: context.config, bot: context.bot, clock: context.clock)
        self.maxQueued = maxQueued
    }

    static let overflowNotice =
        "I'm still answering your earlier messages, so I skipped this one (and will skip others until I'm done). Please send it again in a moment."

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
        let chatID = message.chat.id
        let chat = ChatHandle(id: chatID, isGroup: !message.chat.isPrivate, threadID: message.message_thread_id)
        // A reply a restart cut off was accepted before; everything else is decided before it is queued.
        if !incoming.interruptedByRestart {
            switch policy.decide(message) {
            case .ignore:
                markHandled(update.update_id)
                return nil
            case .notice(let notice, let errorType):
                if errorType != "empty_mention" {
                    context.logger.info(
                        "message_refused",
                        metadata: [
                            "chat_id": .stringConvertible(chatID), "user_id": .stringConvertible(message.from?.id ?? 0),
                            "error_type": .string(errorType), "notified": .stringConvertible(notice != nil),
                        ])
                }
                guard let notice else {
                    markHandled(update.update_id)
                    return nil
                }
                return { [self] in
                    await session.notify(chat, notice, replyTo: message.message_id)
                    markHandled(update.update_id)
                }
            case .accept:
                break
            }
        }

        served.withLock { if $0.count < Self.servedCapacity { $0.insert(chatID) } }
        enum Decision { case queued, start, overflow(tell: Bool) }
        let decision = mailboxes.withLock { boxes -> Decision in
            var box = boxes[chatID] ?? Mailbox()
            defer { boxes[chatID] = box }
            if box.running, box.waiting >= maxQueued {
                defer { box.toldOverflow = true }
                return .overflow(tell: !box.toldOverflow)
            }
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
        case .overflow(let tell):
            context.logger.info(
                "message_skipped", metadata: ["chat_id": .stringConvertible(chatID), "error_type": "chat_queue_full", "notified": .stringConvertible(tell)])
            guard tell else {
                markHandled(update.update_id)
                return nil
            }
            // Once per busy period, quoting the message that was skipped.
            return { [self] in
                await session.notify(chat, Self.overflowNotice, replyTo: message.message_id, quoteInPrivate: true)
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

    /// Chats served since start, counted up to `servedCapacity` (a bound, not a guess).
    public var chatsServed: Int { served.withLock { $0.count } }
    static let servedCapacity = 100_000

    private func markHandled(_ updateID: Int64) {
        try? context.store.setUpdateStatus(updateID, .handled)
    }
}
