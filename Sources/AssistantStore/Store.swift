import Foundation

/// The bot's memory, whatever the database: `SQLiteStore` by default, `PostgresStore` (the Cluster
/// build, `DATABASE_URL=postgres://…`) when replicas share one. Both keep the same named migrations
/// and the same rules, and the storage tests run against both (`StoreContractTests`):
///
/// - every call is one transaction, committed before it returns, and durably (synced to the disk)
///   unless it says otherwise: a commit that is not durable is safe from a crash of the process,
///   and a power cut can only roll it back together with every commit after it up to the next
///   durable one, which makes it durable too (the log is written in order);
/// - a write is not cancelled with its calling task, so a stopped reply is still saved;
/// - a failure is a `StoreError` that says what to do, never SQL or saved text.
public protocol Store: AnyObject, Sendable {
    // MARK: The update ledger (Telegram's updates, stored before they are confirmed)

    /// The offset to confirm with the next getUpdates: one past the last update saved.
    func updateOffset() async throws -> Int64?
    /// Saves newly received updates and sets the offset to `nextOffset` (by default one past the
    /// highest id) in one transaction, before Telegram is told that they were received. Returns the
    /// updates not seen before: an update sent again with the same content is not new.
    func saveReceived(_ updates: [UpdateRow], nextOffset: Int64?) async throws -> [UpdateRow]
    /// Moves several updates together (the parts of an album), in one transaction. A handled
    /// update loses its pending reply.
    func setUpdateStatus(_ updateIDs: [Int64], _ status: UpdateStatus) async throws
    /// Saves the final answer of an update before it is delivered (the update is `answering`).
    func savePendingReply(_ reply: PendingReply, updateID: Int64) async throws
    /// Records that the first `count` parts of an update's pending reply were delivered (never less than before).
    func setReplyPartsSent(_ count: Int, updateID: Int64) async throws
    /// Updates not yet handled, oldest first.
    func openUpdates() async throws -> [StoredUpdate]
    /// Forgets handled updates received more than `age` ago; returns how many.
    @discardableResult func pruneHandledUpdates(olderThan age: TimeInterval) async throws -> Int

    // MARK: Upkeep

    /// Gives the space that deleted rows left back, where the database can.
    func compact() async throws
    /// Forgets turns older than `age` (`HISTORY_RETENTION_DAYS`); conversations and their totals
    /// stay. Returns how many turns were deleted.
    @discardableResult func deleteMessages(olderThan age: TimeInterval) async throws -> Int
    /// The names of the migrations applied so far, oldest first.
    func appliedMigrations() async throws -> [String]

    // MARK: Conversations

    /// A new conversation.
    func createConversation(kind: String, externalID: Int64?) async throws -> ConversationRecord
    /// The conversation for an external id (a Telegram chat), created on first use; two callers
    /// asking at once get the same one. The creation need not be durable: its first turn's
    /// commit, or the next durable one, makes it so.
    func conversation(kind: String, externalID: Int64) async throws -> ConversationRecord
    func conversation(id: Int64) async throws -> ConversationRecord?
    /// The most recently used conversation of a kind (the terminal chat resumes it).
    func latestConversation(kind: String) async throws -> ConversationRecord?
    /// Sets (or with `nil`, resets) the conversation's model.
    func setModel(_ model: String?, conversationID: Int64) async throws
    func setWindowStart(_ messageID: Int64, conversationID: Int64) async throws
    func setSummary(_ summary: String, throughMessageID: Int64, conversationID: Int64) async throws
    /// Forgets the conversation's history and summary; its totals stay.
    func clear(conversationID: Int64) async throws
    /// An external chat changed its id (a group became a supergroup): its conversation moves to the
    /// new id, history intact, unless the new id already has one.
    func moveConversation(kind: String, from oldID: Int64, to newID: Int64) async throws
    /// Totals over every conversation of `kind`.
    func totals(kind: String) async throws -> ConversationTotals

    // MARK: Turns

    /// Saves a turn with its attachments and returns it with its id. `moveWindow` moves the
    /// conversation's window start in the same commit (the request for this turn was planned
    /// before it had an id). `alongWith` are update status changes committed in the same
    /// transaction; `inputCostUSD` (a transcription's) is added to the conversation's cost, and the
    /// attachments to its image and audio counts. `durable: false`: the commit need not be
    /// synced (a user's turn whose answer is saved durably later).
    @discardableResult func appendMessage(
        conversationID: Int64, role: MessageRecord.Role, content: String, status: MessageRecord.Status, model: String?,
        attachments: [Attachment], inputCostUSD: Double, moveWindow: WindowMove?, alongWith changes: [UpdateStatusChange], durable: Bool
    ) async throws -> MessageRecord
    /// The newest attachment that came from `sourceID` (a Telegram file_unique_id) in the
    /// conversation, with its turn's text: a reply to a photo or voice note the bot has seen reuses
    /// it instead of downloading the file again.
    func attachment(sourceID: String, conversationID: Int64) async throws -> (attachment: Attachment, turn: String)?
    /// The model cannot see images: every image of the conversation goes as a placeholder from now on.
    func withholdImages(conversationID: Int64) async throws
    /// A conversation and the turns a request may use (from its window start, not failed, oldest
    /// first), read together from one snapshot; nil when there is no such conversation.
    func context(conversationID: Int64) async throws -> ConversationContext?
    /// Turns in `afterID < id < beforeID` that are not failed: what falls out of the window.
    func messages(conversationID: Int64, after afterID: Int64, before beforeID: Int64) async throws -> [MessageRecord]
    /// Every turn of the conversation, failed ones included, oldest first.
    func allMessages(conversationID: Int64) async throws -> [MessageRecord]
    /// Turns that will be remembered (not failed).
    func messageCount(conversationID: Int64) async throws -> Int
    /// Saves the outcome of a model call: the reply (if any), the user turn's fate, and the totals.
    /// `durable: false` when the caller commits durably right after (a reply's final text).
    func record(_ call: CallRecord, conversationID: Int64, durable: Bool) async throws
}

extension Store {
    public func saveReceived(_ updates: [UpdateRow], nextOffset: Int64? = nil) async throws -> [UpdateRow] {
        try await saveReceived(updates, nextOffset: nextOffset)
    }

    public func setUpdateStatus(_ updateID: Int64, _ status: UpdateStatus) async throws {
        try await setUpdateStatus([updateID], status)
    }

    /// Telegram keeps updates no longer than a day, so none older can come back.
    @discardableResult
    public func pruneHandledUpdates(olderThan age: TimeInterval = 86_400) async throws -> Int {
        try await pruneHandledUpdates(olderThan: age)
    }

    public func createConversation(kind: String, externalID: Int64? = nil) async throws -> ConversationRecord {
        try await createConversation(kind: kind, externalID: externalID)
    }

    @discardableResult
    public func appendMessage(
        conversationID: Int64, role: MessageRecord.Role, content: String, status: MessageRecord.Status = .complete, model: String? = nil,
        attachments: [Attachment] = [], inputCostUSD: Double = 0, moveWindow: WindowMove? = nil, alongWith changes: [UpdateStatusChange] = [],
        durable: Bool = true
    ) async throws -> MessageRecord {
        try await appendMessage(
            conversationID: conversationID, role: role, content: content, status: status, model: model, attachments: attachments,
            inputCostUSD: inputCostUSD, moveWindow: moveWindow, alongWith: changes, durable: durable)
    }

    public func record(_ call: CallRecord, conversationID: Int64) async throws {
        try await record(call, conversationID: conversationID, durable: true)
    }

    /// The turns a request may use: not failed, with id ≥ `fromID`, oldest first.
    func contextMessages(conversationID: Int64, fromID: Int64 = 0) async throws -> [MessageRecord] {
        try await allMessages(conversationID: conversationID).filter { $0.id >= fromID && $0.status != .failed }
    }
}
