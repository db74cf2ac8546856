#if Cluster
import AssistantStore
import Foundation
import PostgresNIO

/// The update ledger on PostgreSQL: the same rules as `SQLiteStore`'s (see `Store`).
extension PostgresStore {
    public func updateOffset() async throws -> Int64? {
        try await run("SELECT value FROM telegram_state WHERE key = 'offset'").first.map { try $0["value"].decode(Int64.self) }
    }

    public func saveReceived(_ updates: [UpdateRow], nextOffset: Int64?) async throws -> [UpdateRow] {
        guard let offset = nextOffset ?? updates.map(\.id).max().map({ $0 + 1 }) else { return [] }
        let (now, logger, channel) = (self.now(), self.logger, updatesChannel)
        return try await write { connection in
            var fresh: [UpdateRow] = []
            for update in updates {
                // A row comes back when the update is new, or came again with other content (Telegram
                // started its ids afresh); one sent again unchanged is not new.
                let saved = try await connection.rows(
                    """
                    INSERT INTO telegram_update (update_id, chat_id, payload, status, received_at, handled_at)
                    VALUES (\(update.id), \(update.chatID), \(update.payload), 'received', \(now), NULL)
                    ON CONFLICT (update_id) DO UPDATE SET chat_id = excluded.chat_id, payload = excluded.payload,
                    status = 'received', received_at = excluded.received_at, handled_at = NULL, reply = NULL,
                    reply_parts_sent = 0, stream_message_id = NULL, stream_part = NULL
                    WHERE telegram_update.payload <> excluded.payload
                    RETURNING update_id
                    """, logger)
                if !saved.isEmpty { fresh.append(update) }
            }
            try await connection.query(
                """
                INSERT INTO telegram_state (key, value) VALUES ('offset', \(offset))
                ON CONFLICT (key) DO UPDATE SET value = excluded.value
                """, logger: logger)
            // Every replica's claimer wakes (on commit) to take the new updates' chats.
            if !fresh.isEmpty { try await connection.query("SELECT pg_notify(\(channel), '')", logger: logger) }
            return fresh
        }
    }

    public func setUpdateStatus(_ updateIDs: [Int64], _ status: UpdateStatus) async throws {
        let changes = updateIDs.map { UpdateStatusChange(updateID: $0, status: status) }
        let (now, logger) = (self.now(), self.logger)
        try await write { connection in
            for change in changes { try await Self.apply(change, now: now, connection, logger) }
        }
    }

    /// Applies a status change inside the caller's transaction; a handled update needs its pending
    /// reply no more.
    static func apply(_ change: UpdateStatusChange, now: Date, _ connection: PostgresConnection, _ logger: Logger) async throws {
        if change.status == .answering {
            // Only from `received`: an update that another replica (or an earlier answer) has
            // taken is never answered twice.
            let moved = try await connection.rows(
                "UPDATE telegram_update SET status = 'answering' WHERE update_id = \(change.updateID) AND status = 'received' RETURNING 1", logger)
            if moved.isEmpty, try await !connection.rows("SELECT 1 AS found FROM telegram_update WHERE update_id = \(change.updateID)", logger).isEmpty {
                throw StoreError.updateTaken(change.updateID)
            }
            return
        }
        let handled = change.status == .handled
        try await connection.query(
            """
            UPDATE telegram_update SET status = \(change.status.rawValue),
            handled_at = CASE WHEN \(handled) THEN \(now) ELSE handled_at END,
            reply = CASE WHEN \(handled) THEN NULL ELSE reply END WHERE update_id = \(change.updateID)
            """, logger: logger)
    }

    public func savePendingReply(_ reply: PendingReply, updateID: Int64) async throws {
        _ = try await run(
            """
            UPDATE telegram_update SET status = 'answering', reply = \(reply.payload), reply_parts_sent = \(reply.partsSent),
            stream_message_id = \(reply.streamMessage?.messageID), stream_part = \(reply.streamMessage?.part)
            WHERE update_id = \(updateID)
            """)
    }

    public func setReplyPartsSent(_ count: Int, updateID: Int64) async throws {
        _ = try await run(
            "UPDATE telegram_update SET reply_parts_sent = GREATEST(reply_parts_sent, \(count)) WHERE update_id = \(updateID)")
    }

    public func openUpdates() async throws -> [StoredUpdate] {
        try await run("SELECT \(unescaped: Self.storedUpdateColumns) FROM telegram_update WHERE status <> 'handled' ORDER BY update_id")
            .map(Self.storedUpdate)
    }

    /// The columns `storedUpdate` reads.
    static let storedUpdateColumns = "update_id, chat_id, payload, status, reply, reply_parts_sent, stream_message_id, stream_part"

    /// An open update as a row of `storedUpdateColumns` has it.
    static func storedUpdate(_ row: PostgresRandomAccessRow) throws -> StoredUpdate {
        let reply = try row["reply"].decode(String?.self)
        let streamMessageID = try row["stream_message_id"].decode(Int?.self)
        let streamPart = try row["stream_part"].decode(Int?.self)
        let partsSent = try row["reply_parts_sent"].decode(Int.self)
        let name = try row["status"].decode(String.self)
        guard let status = UpdateStatus(rawValue: name) else { throw StoreError(description: "an update in the ledger has an unknown status (\(name))") }
        return StoredUpdate(
            update: UpdateRow(id: try row["update_id"].decode(Int64.self), chatID: try row["chat_id"].decode(Int64?.self), payload: try row["payload"].decode(String.self)),
            status: status,
            pendingReply: reply.map { reply in
                PendingReply(payload: reply, partsSent: partsSent, streamMessage: streamMessageID.flatMap { id in streamPart.map { (id, $0) } })
            })
    }

    public func pruneHandledUpdates(olderThan age: TimeInterval) async throws -> Int {
        try await count("DELETE FROM telegram_update WHERE status = 'handled' AND received_at < \(now().addingTimeInterval(-age)) RETURNING 1")
    }

    /// How many rows a `… RETURNING 1` statement touched.
    func count(_ query: PostgresQuery) async throws -> Int {
        var counted = query
        counted.sql = "WITH touched AS (\(query.sql)) SELECT count(*) AS n FROM touched"
        return try await run(counted).first.map { try $0["n"].decode(Int.self) } ?? 0
    }
}
#endif
