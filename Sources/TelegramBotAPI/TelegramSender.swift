import Logging
import Support

/// Every call that shows something in a chat goes through here: budgets from the scheduler,
/// `retry_after` honoured, transient failures retried for final messages, and a plain-text resend
/// when Telegram rejects the entities, so a reply is never lost to formatting.
public struct TelegramSender: Sendable {
    public let client: BotAPIClient
    let scheduler: SendScheduler
    let clock: any Clock<Duration>
    let logger: Logger
    /// The pause between two tries of a final message while Telegram keeps failing.
    let backoff: Backoff

    public init(
        client: BotAPIClient, scheduler: SendScheduler, clock: any Clock<Duration>, logger: Logger,
        backoff: Backoff = Backoff(base: .milliseconds(500), maximum: .seconds(30))
    ) {
        self.client = client
        self.scheduler = scheduler
        self.clock = clock
        self.logger = logger
        self.backoff = backoff
    }

    /// Sends a message that must arrive. Waits out every `retry_after` and retries transient
    /// failures for as long as it takes; only cancellation (shutdown) ends the waiting, and then
    /// never in the middle of a request. Throws what retrying cannot fix (blocked, kicked, chat not
    /// found, unauthorized), or `CancellationError` when shutdown came first.
    @discardableResult
    public func sendFinal(_ chat: ChatHandle, _ text: FormattedText, replyTo: Int? = nil, metrics: ReplyMetrics) async throws -> Telegram.Message {
        try await deliver(chat, text, method: "sendMessage", metrics: metrics) { chatID, text in
            try await client.sendMessage(chatID: chatID, text: text.text, entities: text.entities, replyTo: replyTo, threadID: chat.threadID)
        }
    }

    /// Edits a message into its final text; must arrive like `sendFinal`.
    public func editFinal(_ chat: ChatHandle, messageID: Int, _ text: FormattedText, metrics: ReplyMetrics) async throws {
        try await deliver(chat, text, method: "editMessageText", metrics: metrics) { chatID, text in
            try await client.editMessageText(chatID: chatID, messageID: messageID, text: text.text, entities: text.entities)
        }
    }

    /// Shows a streaming draft if budget allows right now; returns false when skipped.
    public func draft(_ chat: ChatHandle, draftID: Int64, _ text: FormattedText, metrics: ReplyMetrics) async throws -> Bool {
        try await intermediate(chat, metrics: metrics) {
            try await client.sendMessageDraft(
                chatID: chat.id, draftID: draftID, text: text.text, entities: text.entities, canStop: true, threadID: chat.threadID)
        }
    }

    /// Edits a streaming message if budget allows right now; returns false when skipped.
    public func editIntermediate(_ chat: ChatHandle, messageID: Int, _ text: FormattedText, metrics: ReplyMetrics) async throws -> Bool {
        try await intermediate(chat, metrics: metrics) {
            try await client.editMessageText(chatID: chat.id, messageID: messageID, text: text.text, entities: text.entities)
        }
    }

    /// Starts a streaming message if budget allows right now; returns nil when skipped.
    public func sendIntermediate(_ chat: ChatHandle, _ text: FormattedText, replyTo: Int?, metrics: ReplyMetrics) async throws -> Telegram.Message? {
        var sent: Telegram.Message?
        _ = try await intermediate(chat, metrics: metrics, createsMessage: true) {
            sent = try await client.sendMessage(chatID: chat.id, text: text.text, entities: text.entities, replyTo: replyTo, threadID: chat.threadID)
        }
        return sent
    }

    /// How long until the chat's budget would let an update go: zero when it could go now. A
    /// streaming view waits this long instead of preparing updates that would be skipped.
    public func untilIntermediate(_ chat: ChatHandle) async -> Duration {
        await scheduler.wait(chat: chat.id, isGroup: chat.isGroup)
    }

    /// The typing indicator. Best effort: a failure only means no indicator.
    public func typing(_ chat: ChatHandle, metrics: ReplyMetrics) async {
        metrics.call()
        _ = try? await client.sendChatAction(chatID: chat.id, threadID: chat.threadID)
    }

    /// An update that may be skipped: it goes only when the scheduler has budget to spare, and a
    /// failure costs nothing but this update (the final text follows). Only a new message can be
    /// left behind by an ambiguous failure (edits and drafts are idempotent), so only that is logged.
    private func intermediate(
        _ chat: ChatHandle, metrics: ReplyMetrics, createsMessage: Bool = false, _ call: () async throws -> Void
    ) async throws -> Bool {
        guard await scheduler.tryAcquireIntermediate(chat: chat.id, isGroup: chat.isGroup) else { return false }
        metrics.call()
        do {
            try await inFlight(call)
            return true
        } catch TelegramError.rateLimited(let retryAfter) {
            metrics.limited()
            await scheduler.rateLimited(chat: chat.id, retryAfter: retryAfter)
            return false
        } catch TelegramError.migrated(let newID) {
            chat.move(to: newID)
            return false
        } catch let error as TelegramError {
            if error.isAmbiguous, createsMessage {
                // Telegram may show this message; its id is unknown, so the final text goes as a new
                // message and the partial one stays behind.
                logger.warning(
                    "send_failed",
                    metadata: [
                        "chat_id": .stringConvertible(chat.id), "method": "sendMessage", "error_type": "ambiguous_delivery",
                        "cause": .string(error.errorType),
                    ])
            }
            if error.isTransient { return false }  // the final message will carry the text
            if case .cannotParseEntities = error { return false }
            throw error
        }
    }

    /// Runs a call the scheduler let go, and tells it when the call is over, however it ended.
    private func inFlight<T>(_ call: () async throws -> T) async throws -> T {
        do {
            let value = try await call()
            await scheduler.finished()
            return value
        } catch {
            await scheduler.finished()
            throw error
        }
    }

    private func deliver<T: Sendable>(
        _ chat: ChatHandle, _ text: FormattedText, method: String, metrics: ReplyMetrics,
        _ call: @escaping @Sendable (Int64, FormattedText) async throws -> T
    ) async throws -> T {
        var text = text
        var failures = 0
        while true {
            // Waiting for budget (and out a 429) ends at shutdown: nothing has been sent yet.
            try await scheduler.acquireFinal(chat: chat.id, isGroup: chat.isGroup)
            metrics.call()
            let chatID = chat.id
            let attempt = text
            do {
                // A request that has started runs to its end: cut off, it could be applied by
                // Telegram while we think it failed, and be shown twice after the restart.
                return try await inFlight { try await shielded { try await call(chatID, attempt) } }
            } catch TelegramError.rateLimited(let retryAfter) {
                metrics.limited()
                await scheduler.rateLimited(chat: chat.id, retryAfter: retryAfter)
            } catch TelegramError.cannotParseEntities where !text.entities.isEmpty {
                text.entities = []  // the same words, unformatted: never lose a reply to formatting
            } catch TelegramError.migrated(let newID) {
                chat.move(to: newID)
            } catch let error as TelegramError where error.isTransient {
                failures += 1
                // A duplicate is better than a lost answer, but operators should see how often a
                // send that Telegram may already have applied is repeated.
                logger.warning(
                    "send_retry",
                    metadata: [
                        "chat_id": .stringConvertible(chatID), "method": .string(method),
                        "error_type": .string(error.isAmbiguous ? "ambiguous_delivery" : error.errorType),
                        "cause": .string(error.errorType), "failures": .stringConvertible(failures),
                    ])
                try await clock.sleep(for: backoff.wait(after: failures))
            }
        }
    }
}
