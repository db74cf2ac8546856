import Foundation
import GRDB

/// Where an update stands. `answering` survives only a crash: the reply may be half-sent.
public enum UpdateStatus: String, Sendable, DatabaseValueConvertible {
    case received, answering, handled
}

/// An update that was received but not yet handled, to be resumed after a restart.
public struct StoredUpdate: Sendable, Equatable {
    public var update: Telegram.Update
    public var status: UpdateStatus
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
            try db.execute(
                sql: "UPDATE telegram_update SET status = ?, handled_at = CASE WHEN ? = 'handled' THEN ? ELSE handled_at END WHERE update_id = ?",
                arguments: [status, status, Date(), updateID])
        }
    }

    /// Updates not yet handled, oldest first.
    public func openUpdates() throws -> [StoredUpdate] {
        let decoder = JSONDecoder()
        return try read { db in
            try Row.fetchAll(db, sql: "SELECT payload, status FROM telegram_update WHERE status != 'handled' ORDER BY update_id")
                .compactMap { row in
                    let payload: String = row["payload"]
                    guard let update = try? decoder.decode(Telegram.Update.self, from: Data(payload.utf8)) else { return nil }
                    return StoredUpdate(update: update, status: row["status"])
                }
        }
    }

    /// Forgets handled updates older than a day: Telegram keeps updates no longer than that, so
    /// none of them can come back.
    public func pruneHandledUpdates(olderThan age: TimeInterval = 86_400) throws {
        try write { db in
            try db.execute(
                sql: "DELETE FROM telegram_update WHERE status = 'handled' AND received_at < ?",
                arguments: [Date().addingTimeInterval(-age)])
        }
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
