#if Cluster
import AssistantStore
import Foundation
import PostgresNIO

/// Conversations, turns and totals on PostgreSQL: the same rules as `SQLiteStore`'s (see `Store`).
extension PostgresStore {
    public func compact() async throws {
        // Autovacuum gives deleted rows' space back to the tables; nothing to do by hand.
    }

    public func deleteMessages(olderThan age: TimeInterval) async throws -> Int {
        try await count("DELETE FROM message WHERE created_at < \(now().addingTimeInterval(-age)) RETURNING 1")
    }

    // MARK: Conversations

    public func createConversation(kind: String, externalID: Int64?) async throws -> ConversationRecord {
        let now = self.now()
        let rows = try await run(
            "INSERT INTO conversation (kind, external_id, created_at, updated_at) VALUES (\(kind), \(externalID), \(now), \(now)) RETURNING *")
        return try Self.conversation(from: rows)
    }

    public func conversation(kind: String, externalID: Int64) async throws -> ConversationRecord {
        if let existing = try await run("SELECT * FROM conversation WHERE kind = \(kind) AND external_id = \(externalID)").first {
            return try Self.conversation(existing)
        }
        // Another replica may create it at the same moment: then this insert does nothing, and the
        // next statement (a new snapshot) reads theirs.
        let now = self.now()
        let created = try await run(
            """
            INSERT INTO conversation (kind, external_id, created_at, updated_at) VALUES (\(kind), \(externalID), \(now), \(now))
            ON CONFLICT (kind, external_id) DO NOTHING RETURNING *
            """)
        if let created = created.first { return try Self.conversation(created) }
        return try Self.conversation(from: try await run("SELECT * FROM conversation WHERE kind = \(kind) AND external_id = \(externalID)"))
    }

    public func conversation(id: Int64) async throws -> ConversationRecord? {
        try await run("SELECT * FROM conversation WHERE id = \(id)").first.map(Self.conversation)
    }

    public func latestConversation(kind: String) async throws -> ConversationRecord? {
        try await run("SELECT * FROM conversation WHERE kind = \(kind) ORDER BY updated_at DESC, id DESC LIMIT 1").first.map(Self.conversation)
    }

    public func setModel(_ model: String?, conversationID: Int64) async throws {
        _ = try await run("UPDATE conversation SET model = \(model), updated_at = \(now()) WHERE id = \(conversationID)")
    }

    public func setWindowStart(_ messageID: Int64, conversationID: Int64) async throws {
        _ = try await run("UPDATE conversation SET window_start_message_id = \(messageID), updated_at = \(now()) WHERE id = \(conversationID)")
    }

    public func setSummary(_ summary: String, throughMessageID: Int64, conversationID: Int64) async throws {
        _ = try await run(
            """
            UPDATE conversation SET summary = \(Self.text(summary)), summary_through_message_id = \(throughMessageID),
            updated_at = \(now()) WHERE id = \(conversationID)
            """)
    }

    public func clear(conversationID: Int64) async throws {
        let (now, logger) = (self.now(), self.logger)
        try await write { connection in
            try await connection.query("DELETE FROM message WHERE conversation_id = \(conversationID)", logger: logger)
            try await connection.query(
                """
                UPDATE conversation SET summary = NULL, summary_through_message_id = 0, window_start_message_id = 0,
                updated_at = \(now) WHERE id = \(conversationID)
                """, logger: logger)
        }
    }

    public func moveConversation(kind: String, from oldID: Int64, to newID: Int64) async throws {
        _ = try await run(
            """
            UPDATE conversation SET external_id = \(newID), updated_at = \(now())
            WHERE kind = \(kind) AND external_id = \(oldID)
            AND NOT EXISTS (SELECT 1 FROM conversation WHERE kind = \(kind) AND external_id = \(newID))
            """)
    }

    public func totals(kind: String) async throws -> ConversationTotals {
        let rows = try await run(
            """
            SELECT COUNT(*) AS conversations, COALESCE(SUM(requests), 0)::BIGINT AS requests,
            COALESCE(SUM(prompt_tokens), 0)::BIGINT AS prompt, COALESCE(SUM(completion_tokens), 0)::BIGINT AS completion,
            COALESCE(SUM(cost_usd), 0)::DOUBLE PRECISION AS cost, COALESCE(SUM(images), 0)::BIGINT AS images,
            COALESCE(SUM(audio_seconds), 0)::BIGINT AS audio FROM conversation WHERE kind = \(kind)
            """)
        guard let row = rows.first else { return ConversationTotals(conversations: 0, requests: 0, promptTokens: 0, completionTokens: 0, costUSD: 0) }
        return ConversationTotals(
            conversations: try row["conversations"].decode(Int.self), requests: try row["requests"].decode(Int.self),
            promptTokens: try row["prompt"].decode(Int.self), completionTokens: try row["completion"].decode(Int.self),
            costUSD: try row["cost"].decode(Double.self), images: try row["images"].decode(Int.self), audioSeconds: try row["audio"].decode(Int.self))
    }

    // MARK: Turns

    public func appendMessage(
        conversationID: Int64, role: MessageRecord.Role, content: String, status: MessageRecord.Status, model: String?,
        attachments: [Attachment], inputCostUSD: Double, moveWindow: WindowMove?, alongWith changes: [UpdateStatusChange], durable: Bool
    ) async throws -> MessageRecord {
        let (now, logger) = (self.now(), self.logger)
        return try await write(durable: durable) { connection in
            for change in changes { try await Self.apply(change, now: now, connection, logger) }
            let message = try await Self.insertMessage(
                connection, logger, now: now, conversationID: conversationID, role: role, content: content, status: status, model: model,
                tokens: nil)
            let windowStart: Int64? =
                switch moveWindow {
                case .to(let id): id
                case .toNewTurn: message.id
                case nil: nil
                }
            for attachment in attachments {
                try await connection.query(
                    """
                    INSERT INTO attachment (message_id, kind, mime_type, data, width, height, seconds, transcript, source_id, withheld,
                    created_at) VALUES (\(message.id), \(attachment.kind.rawValue), \(attachment.mimeType),
                    \(attachment.data.map { Data($0) }), \(attachment.width), \(attachment.height), \(attachment.seconds),
                    \(attachment.transcript.map(Self.text)), \(attachment.sourceID), \(attachment.withheld), \(now))
                    """, logger: logger)
            }
            let images = attachments.filter { $0.kind == .image }.count
            let seconds = attachments.filter { $0.kind == .audio }.reduce(0) { $0 + ($1.seconds ?? 0) }
            try await connection.query(
                """
                UPDATE conversation SET updated_at = \(now), window_start_message_id = COALESCE(\(windowStart), window_start_message_id),
                images = images + \(images), audio_seconds = audio_seconds + \(seconds), cost_usd = cost_usd + \(inputCostUSD)
                WHERE id = \(conversationID)
                """, logger: logger)
            return message
        }
    }

    public func attachment(sourceID: String, conversationID: Int64) async throws -> (attachment: Attachment, turn: String)? {
        let rows = try await run(
            """
            SELECT attachment.*, message.content AS turn FROM attachment JOIN message ON message.id = attachment.message_id
            WHERE attachment.source_id = \(sourceID) AND message.conversation_id = \(conversationID) ORDER BY attachment.id DESC LIMIT 1
            """)
        guard let row = rows.first else { return nil }
        return (try Self.attachment(row), try row["turn"].decode(String.self))
    }

    public func withholdImages(conversationID: Int64) async throws {
        _ = try await run(
            """
            UPDATE attachment SET withheld = TRUE WHERE kind = 'image'
            AND message_id IN (SELECT id FROM message WHERE conversation_id = \(conversationID))
            """)
    }

    public func context(conversationID: Int64) async throws -> ConversationContext? {
        let logger = self.logger
        return try await read { connection in
            guard let row = try await connection.rows("SELECT * FROM conversation WHERE id = \(conversationID)", logger).first else { return nil }
            let conversation = try Self.conversation(row)
            let start = conversation.windowStartMessageID
            let turns = try await connection.rows(
                "SELECT * FROM message WHERE conversation_id = \(conversationID) AND id >= \(start) AND status <> 'failed' ORDER BY id", logger
            ).map(Self.message)
            var context = ConversationContext(conversation: conversation, turns: turns)
            // Only images go into requests: a conversation that never had one has none to look for.
            guard conversation.images > 0 else { return context }
            let rows = try await connection.rows(
                """
                SELECT attachment.* FROM attachment JOIN message ON message.id = attachment.message_id
                WHERE message.conversation_id = \(conversationID) AND message.id >= \(start) AND message.status <> 'failed'
                ORDER BY attachment.id
                """, logger)
            for row in rows { context.attachments[try row["message_id"].decode(Int64.self), default: []].append(try Self.attachment(row)) }
            return context
        }
    }

    public func messages(conversationID: Int64, after afterID: Int64, before beforeID: Int64) async throws -> [MessageRecord] {
        try await run(
            """
            SELECT * FROM message WHERE conversation_id = \(conversationID) AND id > \(afterID) AND id < \(beforeID)
            AND status <> 'failed' ORDER BY id
            """
        ).map(Self.message)
    }

    public func allMessages(conversationID: Int64) async throws -> [MessageRecord] {
        try await run("SELECT * FROM message WHERE conversation_id = \(conversationID) ORDER BY id").map(Self.message)
    }

    public func messageCount(conversationID: Int64) async throws -> Int {
        try await run("SELECT COUNT(*) AS n FROM message WHERE conversation_id = \(conversationID) AND status <> 'failed'")
            .first.map { try $0["n"].decode(Int.self) } ?? 0
    }

    public func record(_ call: CallRecord, conversationID: Int64, durable: Bool) async throws {
        let (now, logger) = (self.now(), self.logger)
        try await write(durable: durable) { connection in
            if let reply = call.reply {
                _ = try await Self.insertMessage(
                    connection, logger, now: now, conversationID: conversationID, role: .assistant, content: reply.text, status: reply.status,
                    model: reply.model, tokens: call.tokens)
            } else if call.failed, !call.keepsTurn {
                try await connection.query(
                    "UPDATE message SET status = 'failed', updated_at = \(now) WHERE id = \(call.userMessageID)", logger: logger)
            }
            try await connection.query(
                """
                UPDATE conversation SET requests = requests + 1, failures = failures + \(call.failed ? 1 : 0),
                prompt_tokens = prompt_tokens + \(call.tokens?.prompt ?? 0), completion_tokens = completion_tokens + \(call.tokens?.completion ?? 0),
                usage_estimated = usage_estimated OR \(call.tokens?.estimated ?? false), cost_usd = cost_usd + \(call.costUSD),
                last_latency_ms = COALESCE(\(call.latencyMs), last_latency_ms), last_ttft_ms = COALESCE(\(call.ttftMs), last_ttft_ms),
                updated_at = \(now) WHERE id = \(conversationID)
                """, logger: logger)
        }
    }

    // MARK: Rows

    private static func insertMessage(
        _ connection: PostgresConnection, _ logger: Logger, now: Date, conversationID: Int64, role: MessageRecord.Role, content: String,
        status: MessageRecord.Status, model: String?, tokens: CallRecord.Tokens?
    ) async throws -> MessageRecord {
        let rows = try await connection.rows(
            """
            INSERT INTO message (conversation_id, role, content, status, model, prompt_tokens, completion_tokens, usage_estimated,
            created_at, updated_at) VALUES (\(conversationID), \(role.rawValue), \(text(content)), \(status.rawValue), \(model),
            \(tokens?.prompt), \(tokens?.completion), \(tokens?.estimated ?? false), \(now), \(now)) RETURNING *
            """, logger)
        guard let row = rows.first else { throw StoreError(description: "the turn just saved could not be read back") }
        return try message(row)
    }

    /// PostgreSQL's text cannot hold NUL: keep the rest of the text, with a visible mark (as SQLite does).
    static func text(_ text: String) -> String {
        text.utf8.contains(0) ? text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : text
    }

    static func conversation(from rows: [PostgresRandomAccessRow]) throws -> ConversationRecord {
        guard let row = rows.first else { throw StoreError(description: "the conversation just saved could not be read back") }
        return try conversation(row)
    }

    static func conversation(_ row: PostgresRandomAccessRow) throws -> ConversationRecord {
        ConversationRecord(
            id: try row["id"].decode(Int64.self), kind: try row["kind"].decode(String.self), externalID: try row["external_id"].decode(Int64?.self),
            model: try row["model"].decode(String?.self), summary: try row["summary"].decode(String?.self),
            summaryThroughMessageID: try row["summary_through_message_id"].decode(Int64.self),
            windowStartMessageID: try row["window_start_message_id"].decode(Int64.self), requests: try row["requests"].decode(Int.self),
            failures: try row["failures"].decode(Int.self), promptTokens: try row["prompt_tokens"].decode(Int.self),
            completionTokens: try row["completion_tokens"].decode(Int.self), usageEstimated: try row["usage_estimated"].decode(Bool.self),
            costUSD: try row["cost_usd"].decode(Double.self), lastLatencyMs: try row["last_latency_ms"].decode(Int?.self),
            lastTTFTMs: try row["last_ttft_ms"].decode(Int?.self), images: try row["images"].decode(Int.self),
            audioSeconds: try row["audio_seconds"].decode(Int.self), createdAt: try row["created_at"].decode(Date.self),
            updatedAt: try row["updated_at"].decode(Date.self))
    }

    static func message(_ row: PostgresRandomAccessRow) throws -> MessageRecord {
        let role = try row["role"].decode(String.self)
        let status = try row["status"].decode(String.self)
        guard let role = MessageRecord.Role(rawValue: role), let status = MessageRecord.Status(rawValue: status) else {
            throw StoreError(description: "a turn in the database has an unknown role or status (\(role), \(status))")
        }
        return MessageRecord(
            id: try row["id"].decode(Int64.self), conversationID: try row["conversation_id"].decode(Int64.self), role: role,
            content: try row["content"].decode(String.self), status: status, model: try row["model"].decode(String?.self),
            promptTokens: try row["prompt_tokens"].decode(Int?.self), completionTokens: try row["completion_tokens"].decode(Int?.self),
            usageEstimated: try row["usage_estimated"].decode(Bool.self), createdAt: try row["created_at"].decode(Date.self),
            updatedAt: try row["updated_at"].decode(Date.self))
    }

    static func attachment(_ row: PostgresRandomAccessRow) throws -> Attachment {
        let kind = try row["kind"].decode(String.self)
        guard let kind = Attachment.Kind(rawValue: kind) else { throw StoreError(description: "an attachment has an unknown kind (\(kind))") }
        return Attachment(
            kind: kind, mimeType: try row["mime_type"].decode(String.self), data: try row["data"].decode(Data?.self).map { Array($0) },
            width: try row["width"].decode(Int?.self), height: try row["height"].decode(Int?.self), seconds: try row["seconds"].decode(Int?.self),
            transcript: try row["transcript"].decode(String?.self), sourceID: try row["source_id"].decode(String?.self),
            withheld: try row["withheld"].decode(Bool.self))
    }
}
#endif
