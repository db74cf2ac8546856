import Foundation
import GRDB

/// Where an update stands. `answering` survives only a crash: the reply may be half-sent.
public enum UpdateStatus: String, Sendable, DatabaseValueConvertible {
    case received, answering, handled
}

/// A final answer saved for delivery: what to send, how far sending got, and the message that was
/// being edited while it streamed (a group's answer), if any.
public struct PendingReply: Sendable, Equatable {
    /// The final text, as the front end encoded it.
    public var payload: String
    /// Parts already delivered.
    public var partsSent: Int
    public var streamMessage: (messageID: Int, part: Int)?

    public init(payload: String, partsSent: Int, streamMessage: (messageID: Int, part: Int)?) {
        self.payload = payload
        self.partsSent = partsSent
        self.streamMessage = streamMessage
    }

    public static func == (lhs: PendingReply, rhs: PendingReply) -> Bool {
        lhs.payload == rhs.payload && lhs.partsSent == rhs.partsSent
            && lhs.streamMessage?.messageID == rhs.streamMessage?.messageID && lhs.streamMessage?.part == rhs.streamMessage?.part
    }
}

/// An update that was received but not yet handled, to be resumed after a restart.
public struct StoredUpdate: Sendable, Equatable {
    public var update: Telegram.Update
    public var status: UpdateStatus
    /// Set when the answer was complete and only its delivery was cut off.
    public var pendingReply: PendingReply?
}

extension Store {
    /// The offset to confirm with the next getUpdates: one past the last update saved.
    public func telegramOffset() throws -> Int64? {
        try read { db in
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
    public func saveReceived(_ updates: [Telegram.Update], nextOffset: Int64? = nil) throws -> [Telegram.Update] {
        guard let offset = nextOffset ?? updates.map(\.update_id).max().map({ $0 + 1 }) else { return [] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let decoder = JSONDecoder()
        return try write { db in
            var fresh: [Telegram.Update] = []
            for update in updates {
                if let stored = try String.fetchOne(
                    db, sql: "SELECT payload FROM telegram_update WHERE update_id = ?", arguments: [update.update_id]),
                    (try? decoder.decode(Telegram.Update.self, from: Data(stored.utf8))) == update
                {
                    continue  // sent again because it was not confirmed yet
                }
                let payload = String(decoding: try encoder.encode(update), as: UTF8.self)
                try db.execute(
                    sql: """
                        INSERT INTO telegram_update (update_id, chat_id, payload, status, received_at, handled_at)
                        VALUES (?, ?, ?, 'received', ?, NULL)
                        ON CONFLICT(update_id) DO UPDATE SET chat_id = excluded.chat_id, payload = excluded.payload,
                        status = 'received', received_at = excluded.received_at, handled_at = NULL
                        """,
                    arguments: [update.update_id, update.chatID, payload, Date()])
                fresh.append(update)
            }
            try db.execute(
                sql: """
                    INSERT INTO telegram_state (key, value) VALUES ('offset', ?)
                    ON CONFLICT(key) DO UPDATE SET value = excluded.value
                    """,
                arguments: [offset])
            return fresh
        }
    }

    public func setUpdateStatus(_ updateID: Int64, _ status: UpdateStatus) throws {
        try write { db in
            // A handled update needs its pending reply no more.
            try db.execute(
                sql: """
                    UPDATE telegram_update SET status = ?, handled_at = CASE WHEN ? = 'handled' THEN ? ELSE handled_at END,
                    reply = CASE WHEN ? = 'handled' THEN NULL ELSE reply END WHERE update_id = ?
                    """,
                arguments: [status, status, Date(), status, updateID])
        }
    }

    /// Saves the final answer of an update before it is delivered (the update is `answering`).
    public func savePendingReply(_ reply: PendingReply, updateID: Int64) throws {
        try write { db in
            try db.execute(
                sql: """
                    UPDATE telegram_update SET status = 'answering', reply = ?, reply_parts_sent = ?, stream_message_id = ?,
                    stream_part = ? WHERE update_id = ?
                    """,
                arguments: [reply.payload, reply.partsSent, reply.streamMessage?.messageID, reply.streamMessage?.part, updateID])
        }
    }

    /// Records that the first `count` parts of an update's pending reply were delivered.
    public func setReplyPartsSent(_ count: Int, updateID: Int64) throws {
        try write { db in
            try db.execute(
                sql: "UPDATE telegram_update SET reply_parts_sent = max(reply_parts_sent, ?) WHERE update_id = ?",
                arguments: [count, updateID])
        }
    }

    /// Updates not yet handled, oldest first.
    public func openUpdates() throws -> [StoredUpdate] {
        let decoder = JSONDecoder()
        return try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT payload, status, reply, reply_parts_sent, stream_message_id, stream_part
                    FROM telegram_update WHERE status != 'handled' ORDER BY update_id
                    """
            )
            .compactMap { row in
                let payload: String = row["payload"]
                guard let update = try? decoder.decode(Telegram.Update.self, from: Data(payload.utf8)) else { return nil }
                var pending: PendingReply?
                if let reply: String = row["reply"] {
                    let streamID: Int? = row["stream_message_id"]
                    let streamPart: Int? = row["stream_part"]
                    pending = PendingReply(
                        payload: reply, partsSent: row["reply_parts_sent"],
                        streamMessage: streamID.flatMap { id in streamPart.map { (id, $0) } })
                }
                return StoredUpdate(update: update, status: row["status"], pendingReply: pending)
            }
        }
    }

    /// Forgets handled updates older than a day: Telegram keeps updates no longer than that, so
    /// none of them can come back. Returns how many were deleted.
    @discardableResult
    public func pruneHandledUpdates(olderThan age: TimeInterval = 86_400, now: Date = Date()) throws -> Int {
        try write { db in
            try db.execute(
                sql: "DELETE FROM telegram_update WHERE status = 'handled' AND received_at < ?",
                arguments: [now.addingTimeInterval(-age)])
            return db.changesCount
        }
    }

    /// Updates not yet handled.
    func openUpdateRowCount() throws -> Int {
        try read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM telegram_update WHERE status != 'handled'") ?? 0 }
    }

    /// Rows in the update ledger, handled or not.
    func updateRowCount() throws -> Int {
        try read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM telegram_update") ?? 0 }
    }

    /// A group became a supergroup: its conversation moves to the new chat id, history intact.
    public func migrateChat(from oldID: Int64, to newID: Int64) throws {
        try write { db in
            let exists = try Bool.fetchOne(
                db, sql: "SELECT EXISTS(SELECT 1 FROM conversation WHERE kind = 'telegram' AND external_id = ?)", arguments: [newID]) ?? false
            if !exists {
                try db.execute(
                    sql: "UPDATE conversation SET external_id = ?, updated_at = ? WHERE kind = 'telegram' AND external_id = ?",
                    arguments: [newID, Date(), oldID])
            }
        }
    }

    /// Totals over every Telegram chat, for admins' /stats.
    public func telegramTotals() throws -> (chats: Int, requests: Int, promptTokens: Int, completionTokens: Int, costUSD: Double) {
        try read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) AS chats, COALESCE(SUM(requests), 0) AS requests, COALESCE(SUM(prompt_tokens), 0) AS prompt,
                    COALESCE(SUM(completion_tokens), 0) AS completion, COALESCE(SUM(cost_usd), 0) AS cost
                    FROM conversation WHERE kind = 'telegram'
                    """)
            return (row?["chats"] ?? 0, row?["requests"] ?? 0, row?["prompt"] ?? 0, row?["completion"] ?? 0, row?["cost"] ?? 0)
        }
    }
}

extension Telegram.Update {
    /// The chat an update belongs to, if any.
    public var chatID: Int64? {
        message?.chat.id ?? stopped_message_generation?.chat.id
    }
}
