import Foundation
import Logging
import Synchronization

/// Handles one accepted message of one chat: a command, or the streamed model reply. The router
/// has already applied the access policy and guarantees a chat's messages reach it one at a time,
/// in order.
public struct ChatSession: Sendable {
    let context: BotContext

    static let help = """
        I'm an AI assistant. Send me a message and I'll answer; I remember our conversation.

        /help – this message
        /clear – forget this chat's history
        /stats – messages, tokens and estimated cost of this chat
        /model – show the model; /model NAME switches to another allowed model
        """

    public func handle(_ incoming: Incoming) async {
        let update = incoming.update
        guard let message = update.message else { return }
        let chat = ChatHandle(id: message.chat.id, isGroup: !message.chat.isPrivate, threadID: message.message_thread_id)
        let user = message.from?.id
        // Closed unless shutdown cut off the delivery of an answer: then the next start delivers it.
        var closes = true
        defer { if closes { markHandled(update.update_id) } }

        if incoming.interruptedByRestart {
            if let pending = incoming.pendingReply, let text = try? JSONDecoder().decode(FormattedText.self, from: Data(pending.payload.utf8)) {
                closes = await resume(text, pending, message: message, chat: chat, incoming: incoming)
            } else {
                await notify(chat, "I was restarted while answering your message. Please send it again.", replyTo: message.message_id)
            }
            return
        }
        guard let rawText = message.text, !rawText.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            if message.hasNonTextContent {
                await notify(chat, "I can only read text messages.", replyTo: message.message_id)
            }
            return
        }
        if let command = Command(rawText) {
            await notify(chat, self.command(command, chat: chat, user: user), replyTo: message.message_id)
            return
        }
        // In groups the model sees the message without the bot's @mention (Telegram's own entities).
        let text = chat.isGroup ? message.text(withoutMentionsOf: context.bot.username ?? "") : rawText
        closes = await reply(to: text, message: message, chat: chat, incoming: incoming)
    }

    /// Answers one message. Returns false when shutdown cut off the delivery of the answer, which
    /// then stays saved for the next start.
    private func reply(to text: String, message: Telegram.Message, chat: ChatHandle, incoming: Incoming) async -> Bool {
        let updateID = incoming.update.update_id
        let conversation: ConversationRecord
        do {
            conversation = try context.store.conversation(kind: "telegram", externalID: chat.id)
            try context.store.setUpdateStatus(updateID, .answering)
        } catch {
            context.logger.error("store_failed", metadata: ["chat_id": .stringConvertible(chat.id), "error_type": "storage", "error": "\(error)"])
            await notify(chat, ReplyOutcome.storageFailed.notice ?? "", replyTo: message.message_id)
            return true
        }
        let draftID = max(1, updateID)
        let stop = ChangeSignal()  // fired by the draft's stop button
        context.stops.register(chat: chat.id, draft: draftID, stop)
        defer { context.stops.remove(chat: chat.id, draft: draftID) }

        let stream = ReplyStream(
            chat: chat, sender: context.sender, drafts: context.drafts, draftID: draftID, replyTo: message.message_id,
            tick: context.tick, clock: context.clock, journal: journal(updateID))
        let engine = context.engine
        let replies = context.replies
        let model = (try? engine.model(for: conversation.id)) ?? engine.settings.model
        var outcome: ReplyOutcome?
        var deliveryError: TelegramError?
        do {
            outcome = try await stream.run(
                produce: { append in
                    await Self.stoppable(stop, model: model) {
                        do {
                            return try await replies.withPermit {
                                await engine.reply(to: text, conversationID: conversation.id, onDelta: { append($0) })
                            }
                        } catch {
                            return .interrupted(partial: "", model: model, reason: nil)  // stopped while waiting its turn
                        }
                    }
                },
                final: Self.render)
        } catch let error as TelegramError {
            deliveryError = error
        } catch {
            // Shutdown came while the final answer waited for Telegram: it is saved, and the next
            // start delivers it without asking the model again.
            context.logger.info("reply_deferred", metadata: ["chat_id": .stringConvertible(chat.id), "update_id": .stringConvertible(updateID)])
            return false
        }
        logReply(outcome, stream: stream, chat: chat, user: message.from?.id, incoming: incoming, deliveryError: deliveryError)
        return true
    }

    /// Delivers an answer whose delivery a restart cut off, from what was saved. Returns false when
    /// shutdown cut it off again.
    private func resume(_ text: FormattedText, _ pending: PendingReply, message: Telegram.Message, chat: ChatHandle, incoming: Incoming) async -> Bool {
        let updateID = incoming.update.update_id
        let stream = ReplyStream(
            chat: chat, sender: context.sender, drafts: context.drafts, draftID: max(1, updateID), replyTo: message.message_id,
            tick: context.tick, clock: context.clock, journal: journal(updateID))
        var metadata: Logger.Metadata = ["event": "reply", "chat_id": .stringConvertible(chat.id), "resumed": "true"]
        do {
            try await stream.resume(text, partsSent: pending.partsSent, streamMessage: pending.streamMessage)
        } catch let error as TelegramError {
            metadata["error_type"] = .string(error.errorType)
            metadata["telegram_calls"] = .stringConvertible(stream.metrics.calls)
            context.logger.warning("reply", metadata: metadata)
            return true
        } catch {
            context.logger.info("reply_deferred", metadata: ["chat_id": .stringConvertible(chat.id), "update_id": .stringConvertible(updateID)])
            return false
        }
        metadata["telegram_calls"] = .stringConvertible(stream.metrics.calls)
        metadata["rate_limited"] = .stringConvertible(stream.metrics.rateLimited)
        context.logger.info("reply", metadata: metadata)
        return true
    }

    /// Writes a reply's final text and delivery progress to the update's row.
    private func journal(_ updateID: Int64) -> ReplyJournal {
        let store = context.store
        let logger = context.logger
        return ReplyJournal(
            finalReady: { text, partsSent, streamMessage in
                do {
                    let payload = String(decoding: try JSONEncoder().encode(text), as: UTF8.self)
                    try store.savePendingReply(PendingReply(payload: payload, partsSent: partsSent, streamMessage: streamMessage), updateID: updateID)
                } catch {
                    // Delivery goes on; only a restart before it ends would fall back to the notice.
                    logger.error("store_failed", metadata: ["update_id": .stringConvertible(updateID), "error_type": "storage", "error": "\(error)"])
                }
            },
            partsSent: { count in
                do {
                    try store.setReplyPartsSent(count, updateID: updateID)
                } catch {
                    logger.error("store_failed", metadata: ["update_id": .stringConvertible(updateID), "error_type": "storage", "error": "\(error)"])
                }
            })
    }

    /// Runs `body` until it finishes or the stop signal fires, in which case `body` is cancelled
    /// (the engine then saves and returns what was shown so far).
    static func stoppable(_ stop: ChangeSignal, model: String, _ body: @escaping @Sendable () async -> ReplyOutcome) async -> ReplyOutcome {
        await withTaskGroup(of: ReplyOutcome?.self) { group in
            group.addTask { await body() }
            group.addTask {
                await stop.wait()
                return nil
            }
            var outcome: ReplyOutcome?
            while let next = await group.next() {
                group.cancelAll()
                if let next { outcome = next }
            }
            return outcome ?? .interrupted(partial: "", model: model, reason: nil)
        }
    }

    /// The final text of a reply: the answer as formatted text, with any notice in italics after it.
    static func render(_ outcome: ReplyOutcome) -> FormattedText? {
        var text: FormattedText
        switch outcome {
        case .answered(let completion):
            text = MarkdownRenderer.render(completion.text)
        case .interrupted(let partial, _, _):
            text = MarkdownRenderer.render(String(partial.reversed().drop(while: \.isWhitespace).reversed()))
        case .failed, .messageTooLong, .storageFailed:
            return FormattedText(text: outcome.notice ?? "Something went wrong. Please try again.")
        }
        if let notice = outcome.notice {
            if !text.text.isEmpty { text.append("\n\n") }
            text.wrap("italic") { $0.append(notice) }
        }
        return text.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? FormattedText(text: "(empty answer)") : text
    }

    // MARK: Commands

    func command(_ command: Command, chat: ChatHandle, user: Int64?) -> String {
        do {
            let conversation = try context.store.conversation(kind: "telegram", externalID: chat.id)
            switch command.name {
            case "start", "help":
                return Self.help
            case "clear":
                try context.engine.clear(conversationID: conversation.id)
                return "History cleared. Let's start fresh."
            case "stats":
                var text = try context.engine.stats(conversationID: conversation.id).text
                // Bot-wide totals are for an admin's private chat, never posted into a group.
                if context.isAdmin(user), !chat.isGroup {
                    let totals = try context.store.telegramTotals()
                    text += "\n\nAll chats: \(totals.chats) chats, \(totals.requests) requests, \(totals.promptTokens) prompt and \(totals.completionTokens) completion tokens, estimated cost $\(ConversationStats.sixDecimals(totals.costUSD))"
                }
                return text
            case "model":
                let allowed = context.allowedModels
                let current = try context.engine.model(for: conversation.id)
                guard !command.argument.isEmpty else {
                    return "Model: \(current)\nAllowed: \(allowed.joined(separator: ", "))"
                }
                if chat.isGroup, !context.isAdmin(user) {
                    return "Only the bot's admins can change the model in a group."
                }
                guard allowed.contains(command.argument) else {
                    return "\(command.argument) is not allowed. Choose one of: \(allowed.joined(separator: ", "))"
                }
                try context.engine.setModel(command.argument, conversationID: conversation.id)
                return "Model switched to \(command.argument) for this chat."
            default:
                return "Unknown command /\(command.name). Try /help."
            }
        } catch {
            context.logger.error("store_failed", metadata: ["chat_id": .stringConvertible(chat.id), "error_type": "storage", "error": "\(error)"])
            return ReplyOutcome.storageFailed.notice ?? ""
        }
    }

    // MARK: Helpers

    /// A short message that must arrive (a refusal, a command's answer, a notice). It quotes the
    /// message it answers in groups, and in private chats too when `quoteInPrivate`.
    func notify(_ chat: ChatHandle, _ text: String, replyTo: Int, quoteInPrivate: Bool = false) async {
        let metrics = ReplyMetrics()
        do {
            try await context.sender.sendFinal(
                chat, FormattedText(text: text), replyTo: chat.isGroup || quoteInPrivate ? replyTo : nil, metrics: metrics)
        } catch let error as TelegramError {
            context.logger.warning("send_failed", metadata: ["chat_id": .stringConvertible(chat.id), "error_type": .string(error.errorType)])
        } catch {}
    }

    private func markHandled(_ updateID: Int64) {
        do {
            try context.store.setUpdateStatus(updateID, .handled)
        } catch {
            context.logger.error("store_failed", metadata: ["error_type": "storage", "error": "\(error)"])
        }
    }

    private func logReply(
        _ outcome: ReplyOutcome?, stream: ReplyStream, chat: ChatHandle, user: Int64?, incoming: Incoming, deliveryError: TelegramError?
    ) {
        var metadata: Logger.Metadata = [
            "event": "reply",
            "chat_id": .stringConvertible(chat.id),
            "user_id": .stringConvertible(user ?? 0),
            "latency_ms": .stringConvertible((ContinuousClock.now - incoming.receivedAt).milliseconds),
            "telegram_calls": .stringConvertible(stream.metrics.calls),
            "rate_limited": .stringConvertible(stream.metrics.rateLimited),
        ]
        if let visible = stream.firstVisible {
            metadata["first_visible_ms"] = .stringConvertible((visible - incoming.receivedAt).milliseconds)
        }
        var errorType: String? = deliveryError?.errorType
        switch outcome {
        case .answered(let completion):
            metadata["model"] = .string(completion.model)
            metadata["ttft_ms"] = completion.timeToFirstToken.map { .stringConvertible($0.milliseconds) }
            metadata["prompt_tokens"] = .stringConvertible(completion.usage.promptTokens)
            metadata["completion_tokens"] = .stringConvertible(completion.usage.completionTokens)
            metadata["usage_estimated"] = .stringConvertible(completion.usage.estimated)
        case .interrupted(_, let model, let reason):
            metadata["model"] = .string(model)
            errorType = errorType ?? reason?.errorType ?? "stopped"
        case .failed(let error):
            errorType = errorType ?? error.errorType
        case .messageTooLong:
            errorType = errorType ?? "message_too_long"
        case .storageFailed:
            errorType = errorType ?? "storage"
        case nil:
            errorType = errorType ?? "cancelled"
        }
        if let errorType {
            metadata["error_type"] = .string(errorType)
            if deliveryError != nil {
                context.logger.warning("reply", metadata: metadata)
                return
            }
        }
        context.logger.info("reply", metadata: metadata)
    }
}
