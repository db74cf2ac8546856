import Logging
import ServiceLifecycle
import Support
import TelegramBotAPI

/// Sends each update to its chat's mailbox. A chat's messages are handled one at a time, in order;
/// different chats run concurrently. A chat with nothing queued holds no task and no memory.
///
/// Runs until the update stream ends (the intake stopped: a shutdown), then lets the replies in
/// flight finish; when the service group's grace period runs out it is cancelled, and they end
/// as "(interrupted)". What has not started stays open in the ledger for the next start.
public final class ChatDispatcher: Service, Sendable, CustomStringConvertible {
    let updates: AsyncStream<Incoming>
    let policy: AccessPolicy
    let handler: MessageHandler
    let intake: UpdateIntake
    let stops: StopRegistry
    let notices: NoticeSender
    let notifier: SystemdNotifier
    let logger: Logger
    /// Messages a chat may have waiting behind the one being answered.
    let mailboxes: Mailboxes
    /// Albums being gathered into one turn.
    let albums: Albums

    public init(
        updates: AsyncStream<Incoming>, policy: AccessPolicy, handler: MessageHandler, intake: UpdateIntake, stops: StopRegistry,
        notices: NoticeSender, notifier: SystemdNotifier, mailboxes: Mailboxes, albums: Albums, logger: Logger
    ) {
        self.albums = albums
        self.updates = updates
        self.policy = policy
        self.handler = handler
        self.intake = intake
        self.stops = stops
        self.notices = notices
        self.notifier = notifier
        self.logger = logger
        self.mailboxes = mailboxes
    }

    public var description: String { "ChatDispatcher" }

    static let overflowNotice =
        "I'm still answering your earlier messages, so I skipped this one (and will skip others until I'm done). Please send it again in a moment."

    public func run() async {
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for await incoming in updates {
                    if let work = await route(incoming) { group.addTask { await work() } }
                }
                // The intake has stopped: a shutdown. Replies in flight finish, or are cut off when
                // the grace period ends.
                let inFlight = mailboxes.active
                notifier.notify("STOPPING=1\nSTATUS=Shutting down, finishing \(inFlight) replies")
                logger.info("shutting_down", metadata: ["replies_in_flight": .stringConvertible(inFlight)])
            }
            // The group stops its services one at a time, the intake first: ending before our turn
            // would count as an unexpected end and fail the shutdown.
            try? await gracefulShutdown()
        } onCancel: {
            if mailboxes.active > 0 {
                logger.warning("shutdown_grace_expired", metadata: ["hint": "replies still running were cut off and marked (interrupted)"])
            }
        }
    }

    /// Routes an update. Returns work to run as a new child task, or nil when the update was
    /// handled at once or joined a chat that is already being served.
    func route(_ incoming: Incoming) async -> (@Sendable () async -> Void)? {
        let update = incoming.update
        logger.debug("update", metadata: ["update_id": .stringConvertible(update.update_id), "chat_id": .stringConvertible(update.chatID ?? 0)])

        if let stopped = update.stopped_message_generation {
            let found = stops.stop(chat: stopped.chat.id, draft: stopped.draft_id)
            logger.info("stop_requested", metadata: ["chat_id": .stringConvertible(stopped.chat.id), "found": .stringConvertible(found)])
            await intake.handled(update.update_id)
            return nil
        }
        guard let message = update.message else {
            await intake.handled(update.update_id)
            return nil
        }
        if let newID = message.migrate_to_chat_id {
            await intake.migrate(from: message.chat.id, to: newID)
            await intake.handled(update.update_id)
            return nil
        }
        // A later part of an album joins the first, which is queued already.
        if albums.join(update) { return nil }
        let chatID = message.chat.id
        let chat = ChatHandle(id: chatID, isGroup: !message.chat.isPrivate, threadID: message.message_thread_id)
        // A reply a restart cut off was accepted before; everything else is decided before it is queued.
        if !incoming.interruptedByRestart {
            switch policy.decide(message) {
            case .ignore:
                await intake.handled(update.update_id)
                return nil
            case .notice(let notice, let errorType):
                if errorType != "empty_mention" {
                    logger.info(
                        "message_refused",
                        metadata: [
                            "chat_id": .stringConvertible(chatID), "user_id": .stringConvertible(message.from?.id ?? 0),
                            "error_type": .string(errorType), "notified": .stringConvertible(notice != nil),
                        ])
                }
                guard let notice else {
                    await intake.handled(update.update_id)
                    return nil
                }
                return { [self] in
                    guard await intake.mayAnswer(chatID, updateIDs: [update.update_id]) else { return }
                    await notices.send(chat, notice, replyTo: message.message_id)
                    await intake.handled(update.update_id)
                }
            case .accept:
                break
            }
        }

        let decision = mailboxes.enqueue(incoming, chatID: chatID)
        switch decision {
        case .queued:
            albums.start(update)
            return nil
        case .start:
            albums.start(update)
            return { [self] in await drain(chatID) }
        case .overflow(let tell):
            logger.info(
                "message_skipped", metadata: ["chat_id": .stringConvertible(chatID), "error_type": "chat_queue_full", "notified": .stringConvertible(tell)])
            guard tell else {
                await intake.handled(update.update_id)
                return nil
            }
            // Once per busy period, quoting the message that was skipped.
            return { [self] in
                guard await intake.mayAnswer(chatID, updateIDs: [update.update_id]) else { return }
                await notices.send(chat, Self.overflowNotice, replyTo: message.message_id, quoteInPrivate: true)
                await intake.handled(update.update_id)
            }
        }
    }

    /// Serves a chat until its mailbox is empty, or until shutdown cuts the bot off: then what has
    /// not started stays open in the database and is answered after the restart.
    private func drain(_ chatID: Int64) async {
        while var next = mailboxes.next(chatID) {
            next.albumParts = await albums.collect(next.update)
            await handler.handle(next)
        }
    }
}
