import Foundation
import GRDB

/// The update ledger: every update the front end received, until it is handled, and the offset to confirm.
extension SQLiteStore {
    /// The offset to confirm with the next getUpdates: one past the last update saved.
    public func updateOffset() async throws -> Int64? {
        try await read { db in
            try Int64.fetchOne(db, sql: "SELECT value FROM telegram_state WHERE key = 'offset'")
        }
    }

    /// Saves newly received updates and sets the offset to `nextOffset` in one transaction, before
    /// Telegram is told (by the next getUpdates) that they were received. Returns the updates not
    /// seen before.
    ///
    /// The offset follows the ids Telegram returned, even when they went down: after a week without
    /// updates Telegram starts its ids afresh, and an offset left "in the future" is ignored by the
    /// server, which then serves the same head of its queue forever. For the same reason an id alone
    /// does not make an update old: one that was seen before has the same content too.
    public func saveReceived(_ updates: [UpdateRow], nextOffset: Int64?) async throws -> [UpdateRow] {
        guard let offset = nextOffset ?? updates.map(\.id).max().map({ $0 + 1 }) else { return [] }
        let now = self.stamp()
        return try await write { db in
            var fresh: [UpdateRow] = []
            for update in updates {
                if let stored = try String.fetchOne(
                    db.cachedStatement(sql: "SELECT payload FROM telegram_update WHERE update_id = ?"), arguments: [update.id]),
                    stored == update.payload
                {
                    continue  // sent again because it was not confirmed yet
                }
                try db.run(
                    """
                        INSERT INTO telegram_update (update_id, chat_id, payload, status, received_at, handled_at)
                        VALUES (?, ?, ?, 'received', ?, NULL)
                        ON CONFLICT(update_id) DO UPDATE SET chat_id = excluded.chat_id, payload = excluded.payload,
                        status = 'received', received_at = excluded.received_at, handled_at = NULL
                        """,
                    [update.id, update.chatID, update.payload, now])
                fresh.append(update)
            }
            try db.run(
                """
                    INSERT INTO telegram_state (key, value) VALUES ('offset', ?)
                    ON CONFLICT(key) DO UPDATE SET value = excluded.value
                    """,
                [offset])
            return fresh
        }
    }

    /// Moves several updates together (the parts of an album), in one transaction.
    public func setUpdateStatus(_ updateIDs: [Int64], _ status: UpdateStatus) async throws {
        try await write { db in
            for id in updateIDs { try self.apply(UpdateStatusChange(updateID: id, status: status), db) }
        }
    }

    /// Applies a status change inside the caller's transaction.
    func apply(_ change: UpdateStatusChange, _ db: Database) throws {
        if change.status == .answering {
            // Only from `received`: an update that another replica (or an earlier answer) has
            // taken is never answered twice.
            try db.run("UPDATE telegram_update SET status = 'answering' WHERE update_id = ? AND status = 'received'", [change.updateID])
            if db.changesCount == 0, try Row.fetchOne(db, sql: "SELECT 1 FROM telegram_update WHERE update_id = ?", arguments: [change.updateID]) != nil {
                throw StoreError.updateTaken(change.updateID)
            }
            return
        }
        // A handled update needs its pending reply no more.
        try db.run(
            """
                UPDATE telegram_update SET status = ?, handled_at = CASE WHEN ? = 'handled' THEN ? ELSE handled_at END,
                reply = CASE WHEN ? = 'handled' THEN NULL ELSE reply END WHERE update_id = ?
                """,
            [change.status, change.status, stamp(), change.status, change.updateID])
    }

    /// Saves the final answer of an update before it is delivered (the update is `answering`).
    public func savePendingReply(_ reply: PendingReply, updateID: Int64) async throws {
        try await write { db in
            try db.run(
                """
                    UPDATE telegram_update SET status = 'answering', reply = ?, reply_parts_sent = ?, stream_message_id = ?,
                    stream_part = ? WHERE update_id = ?
                    """,
                [reply.payload, reply.partsSent, reply.streamMessage?.messageID, reply.streamMessage?.part, updateID])
        }
    }

    /// Records that the first `count` parts of an update's pending reply were delivered.
    public func setReplyPartsSent(_ count: Int, updateID: Int64) async throws {
        try await write { db in
            try db.run(
                "UPDATE telegram_update SET reply_parts_sent = max(reply_parts_sent, ?) WHERE update_id = ?",
                [count, updateID])
        }
    }

    /// Updates not yet handled, oldest first.
    public func openUpdates() async throws -> [StoredUpdate] {
        try await read { db in
            try LedgerRecord.filter(LedgerRecord.Columns.status != UpdateStatus.handled).order(LedgerRecord.Columns.updateID)
                .fetchAll(db).map(\.stored)
        }
    }

    /// Forgets handled updates older than a day: Telegram keeps updates no longer than that, so
    /// none of them can come back. Returns how many were deleted.
    @discardableResult
    public func pruneHandledUpdates(olderThan age: TimeInterval) async throws -> Int {
        try await write { db in
            try db.run(
                "DELETE FROM telegram_update WHERE status = 'handled' AND received_at < ?",
                [self.stamp(ago: age)])
            return db.changesCount
        }
    }

    /// Rows in the update ledger, handled or not.
    func updateRowCount() throws -> Int {
        try readNow { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM telegram_update") ?? 0 }
    }

}
