import AssistantStore
import Conversation
import Logging
import Support
import TelegramBotAPI

/// Answers one message with the model: takes a permit (at most `MAX_CONCURRENT_REPLIES` streams at
/// once), arms the stop button, runs `engine.reply` beside the presenter that shows its deltas,
/// delivers the final text and writes the `reply` log line.
public struct ReplyPipeline: Sendable {
    let engine: ConversationEngine
    let permits: AsyncSemaphore
    let stops: StopRegistry
    let sender: TelegramSender
    let drafts: DraftSupport
    let intake: UpdateIntake
    let notices: NoticeSender
    /// How often a streaming reply looks for new text to show.
    let tick: Duration
    let clock: any Clock<Duration>
    let stopwatch: Stopwatch

    public init(
        engine: ConversationEngine, permits: AsyncSemaphore, stops: StopRegistry, sender: TelegramSender, drafts: DraftSupport,
        intake: UpdateIntake, notices: NoticeSender, tick: Duration, clock: any Clock<Duration>, stopwatch: Stopwatch
    ) {
        self.engine = engine
        self.permits = permits
        self.stops = stops
        self.sender = sender
        self.drafts = drafts
        self.intake = intake
        self.notices = notices
        self.tick = tick
        self.clock = clock
        self.stopwatch = stopwatch
    }

    /// Answers `turn`; a voice note's `transcript` is shown first, once the turn is saved. Returns
    /// whether the update still has to be marked handled: not when the delivery of the last part did
    /// that, nor when shutdown cut the delivery off (the answer then stays saved for the next start).
    func reply(
        to turn: UserTurn, transcript: String? = nil, message: Telegram.Message, chat: ChatHandle, incoming: Incoming, logger: Logger
    ) async -> Bool {
        let updateID = incoming.update.update_id
        let conversation: ConversationRecord
        do {
            conversation = try await engine.conversation(kind: UpdateIntake.conversationKind, externalID: chat.id)
        } catch {
            logger.error("store_failed", metadata: ["error_type": "storage", "error": "\(error)"])
            await notices.send(chat, ReplyOutcome.storageFailed.notice ?? "", replyTo: message.message_id)
            return true
        }
        let draftID = DraftID.first(forUpdate: updateID)
        let stop = ChangeSignal()  // fired by the draft's stop button
        stops.register(chat: chat.id, draft: draftID, stop)
        defer { stops.remove(chat: chat.id, draft: draftID) }

        let presenter = presenter(chat, draftID: draftID, replyTo: message.message_id, updateIDs: incoming.updateIDs)
        let (engine, permits, answering, notices) = (self.engine, self.permits, intake.answering(incoming.updateIDs), self.notices)
        var showTranscript: (@Sendable () async -> Void)?
        if let transcript {
            let (notice, replyTo) = (Self.transcriptNotice(transcript), message.message_id)
            showTranscript = { await notices.send(chat, notice, replyTo: replyTo, quoteInPrivate: true) }
        }
        let (conversationID, model) = (conversation.id, conversation.model ?? engine.settings.model)
        let onSaved = showTranscript
        // The presenter shows new text as it comes: once a tick is as often as a draft may change.
        let deliveryInterval = tick
        // The model's answer streams into the presenter until it ends, the stop button fires (the
        // engine then saves and returns what was shown), or shutdown cancels the reply. Its outcome
        // need not be synced to the disk: the final text's journal entry, saved durably before
        // anything is delivered, syncs it along.
        let answer: ReplyOutcome? = try? await race({
            try await permits.withPermit {
                await engine.reply(
                    to: turn, conversationID: conversationID, alongWith: answering, logger: logger, onSaved: onSaved,
                    deliveryInterval: deliveryInterval, durableOutcome: false, onDelta: { presenter.append($0) })
            }
        }, against: {
            // The presenter shows the answer as it comes; the stop button ends the race.
            try await race({ await stop.wait() }, against: { await presenter.display() })
        })
        // No answer: stopped or shut down while waiting for a permit.
        let outcome = answer ?? .interrupted(partial: "", model: model, reason: nil)
        if case .answeredElsewhere = outcome {
            // Another replica took the update first (this one's lease had lapsed): it answers.
            logger.warning("reply_skipped", metadata: ["update_id": .stringConvertible(updateID), "error_type": "update_taken"])
            return false
        }
        // Replicas: a replica that stalled while it streamed may have lost the chat meanwhile; the
        // one that took it delivers or marks this answer, so it is not delivered here too.
        guard await intake.mayAnswer(chat.id, updateIDs: incoming.updateIDs) else { return false }
        var deliveryError: TelegramError?
        do {
            try await presenter.finish(ReplyPresenter.render(outcome))
        } catch let error as TelegramError {
            deliveryError = error
        } catch {
            // Shutdown came while the final answer waited for Telegram: it is saved, and the next
            // start delivers it without asking the model again.
            logger.info("reply_deferred", metadata: ["update_id": .stringConvertible(updateID)])
            return false
        }
        logReply(outcome, presenter: presenter, user: message.from?.id, incoming: incoming, deliveryError: deliveryError, logger: logger)
        return !presenter.journalClosed
    }

    /// The longest transcript shown back (the model gets all of it).
    static let maxTranscriptShown = 3_500

    /// A transcript as the user sees it before the answer: a quote they can check.
    static func transcriptNotice(_ transcript: String) -> FormattedText {
        let shown = transcript.count > maxTranscriptShown ? String(transcript.prefix(maxTranscriptShown)) + "…" : transcript
        var text = FormattedText(text: "🎤 ")
        text.wrap("blockquote") { $0.append(shown) }
        return text
    }

    /// Delivers an answer whose delivery a restart cut off, from what was saved. Returns whether the
    /// update still has to be marked handled, as `reply` does.
    func resume(
        _ text: FormattedText, _ pending: PendingReply, message: Telegram.Message, chat: ChatHandle, incoming: Incoming, logger: Logger
    ) async -> Bool {
        let updateID = incoming.update.update_id
        let presenter = presenter(chat, draftID: DraftID.first(forUpdate: updateID), replyTo: message.message_id, updateIDs: incoming.updateIDs)
        var metadata: Logger.Metadata = ["event": "reply", "resumed": "true"]
        do {
            try await presenter.resume(text, partsSent: pending.partsSent, streamMessage: pending.streamMessage)
        } catch let error as TelegramError {
            metadata["error_type"] = .string(error.errorType)
            metadata["telegram_calls"] = .stringConvertible(presenter.metrics.calls)
            logger.warning("reply", metadata: metadata)
            return true
        } catch {
            logger.info("reply_deferred", metadata: ["update_id": .stringConvertible(updateID)])
            return false
        }
        metadata["telegram_calls"] = .stringConvertible(presenter.metrics.calls)
        metadata["rate_limited"] = .stringConvertible(presenter.metrics.rateLimited)
        logger.info("reply", metadata: metadata)
        return !presenter.journalClosed
    }

    private func presenter(_ chat: ChatHandle, draftID: Int64, replyTo: Int, updateIDs: [Int64]) -> ReplyPresenter {
        ReplyPresenter(
            chat: chat, sender: sender, drafts: drafts, draftID: draftID, replyTo: replyTo, tick: tick, clock: clock,
            stopwatch: stopwatch, journal: intake.journal(updateIDs))
    }

    /// The one `reply` line per answered message: latency, first visible text, tokens, Telegram
    /// calls, and the error type when it did not end well.
    private func logReply(
        _ outcome: ReplyOutcome, presenter: ReplyPresenter, user: Int64?, incoming: Incoming, deliveryError: TelegramError?, logger: Logger
    ) {
        var metadata: Logger.Metadata = [
            "event": "reply",
            "user_id": .stringConvertible(user ?? 0),
            "latency_ms": .stringConvertible((stopwatch.elapsed - incoming.receivedAt).milliseconds),
            "telegram_calls": .stringConvertible(presenter.metrics.calls),
            "rate_limited": .stringConvertible(presenter.metrics.rateLimited),
        ]
        if let visible = presenter.firstVisible {
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
        case .answeredElsewhere:
            errorType = errorType ?? "update_taken"
        }
        if let errorType {
            metadata["error_type"] = .string(errorType)
            if deliveryError != nil {
                logger.warning("reply", metadata: metadata)
                return
            }
        }
        logger.info("reply", metadata: metadata)
    }
}
