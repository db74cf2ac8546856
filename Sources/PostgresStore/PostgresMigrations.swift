#if Cluster
import AssistantStore
import PostgresNIO

/// The schema on PostgreSQL: the same named, append-only migrations as SQLite's (`Migrations`), in
/// PostgreSQL's types. Never edit a shipped one: add a new one, here and there.
enum PostgresMigrations {
    static let all: [(name: String, statements: [PostgresQuery])] = [
        (
            "v1: conversations and messages",
            [
                """
                CREATE TABLE conversation (
                    id BIGSERIAL PRIMARY KEY,
                    kind TEXT NOT NULL,
                    external_id BIGINT,
                    model TEXT,
                    summary TEXT,
                    summary_through_message_id BIGINT NOT NULL DEFAULT 0,
                    window_start_message_id BIGINT NOT NULL DEFAULT 0,
                    requests BIGINT NOT NULL DEFAULT 0,
                    failures BIGINT NOT NULL DEFAULT 0,
                    prompt_tokens BIGINT NOT NULL DEFAULT 0,
                    completion_tokens BIGINT NOT NULL DEFAULT 0,
                    usage_estimated BOOLEAN NOT NULL DEFAULT FALSE,
                    cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
                    last_latency_ms BIGINT,
                    last_ttft_ms BIGINT,
                    created_at TIMESTAMPTZ NOT NULL,
                    updated_at TIMESTAMPTZ NOT NULL,
                    UNIQUE (kind, external_id)
                )
                """,
                """
                CREATE TABLE message (
                    id BIGSERIAL PRIMARY KEY,
                    conversation_id BIGINT NOT NULL REFERENCES conversation ON DELETE CASCADE,
                    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
                    content TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('complete', 'partial', 'failed')),
                    model TEXT,
                    prompt_tokens BIGINT,
                    completion_tokens BIGINT,
                    usage_estimated BOOLEAN NOT NULL DEFAULT FALSE,
                    created_at TIMESTAMPTZ NOT NULL,
                    updated_at TIMESTAMPTZ NOT NULL
                )
                """,
                "CREATE INDEX message_by_conversation ON message (conversation_id, id)",
            ]
        ),
        (
            "v2: telegram updates",
            [
                """
                CREATE TABLE telegram_update (
                    update_id BIGINT PRIMARY KEY,
                    chat_id BIGINT,
                    payload TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('received', 'answering', 'handled')),
                    received_at TIMESTAMPTZ NOT NULL,
                    handled_at TIMESTAMPTZ
                )
                """,
                "CREATE INDEX telegram_update_open ON telegram_update (status, update_id)",
                "CREATE TABLE telegram_state (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            ]
        ),
        (
            "v3: pending replies",
            [
                """
                ALTER TABLE telegram_update ADD COLUMN reply TEXT, ADD COLUMN reply_parts_sent BIGINT NOT NULL DEFAULT 0,
                ADD COLUMN stream_message_id BIGINT, ADD COLUMN stream_part BIGINT
                """
            ]
        ),
        (
            "v4: attachments",
            [
                """
                CREATE TABLE attachment (
                    id BIGSERIAL PRIMARY KEY,
                    message_id BIGINT NOT NULL REFERENCES message ON DELETE CASCADE,
                    kind TEXT NOT NULL CHECK (kind IN ('image', 'audio')),
                    mime_type TEXT NOT NULL,
                    data BYTEA,
                    width BIGINT,
                    height BIGINT,
                    seconds BIGINT,
                    transcript TEXT,
                    source_id TEXT,
                    withheld BOOLEAN NOT NULL DEFAULT FALSE,
                    created_at TIMESTAMPTZ NOT NULL
                )
                """,
                "CREATE INDEX attachment_by_message ON attachment (message_id)",
                "CREATE INDEX attachment_by_source ON attachment (source_id)",
                "ALTER TABLE conversation ADD COLUMN images BIGINT NOT NULL DEFAULT 0, ADD COLUMN audio_seconds BIGINT NOT NULL DEFAULT 0",
            ]
        ),
        (
            "v5: replicas and chat leases",
            [
                // A replica is alive while its heartbeat has not expired (the database's clock).
                "CREATE TABLE replica (id TEXT PRIMARY KEY, expires_at TIMESTAMPTZ NOT NULL)",
                // The replica that answers a chat; the lease is void once that replica is not alive.
                "CREATE TABLE chat_lease (chat_id BIGINT PRIMARY KEY, replica TEXT NOT NULL)",
                "CREATE INDEX chat_lease_by_replica ON chat_lease (replica)",
                // Open updates by chat, for claiming and releasing chats.
                "CREATE INDEX telegram_update_open_by_chat ON telegram_update ((COALESCE(chat_id, 0)), update_id) WHERE status <> 'handled'",
            ]
        ),
    ]
}

extension PostgresStore {
    /// Applies the migrations not applied yet, in one transaction, under an advisory lock
    /// on the schema: replicas that start together wait for the first, then find nothing to do.
    func migrate() async throws {
        let schema = location.schema
        let logger = self.logger
        let lock = "telegram-assistant migrations of " + (schema ?? "public")
        // No time limit: it may wait for another replica's migrations.
        try await write(withoutTimeLimit: true) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(lock)))", logger: logger)
            if let schema {
                // Checked to be a plain lower-case identifier (`PostgresLocation`).
                try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: logger)
            }
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, position INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                logger: logger)
            let applied = Set(try await connection.rows("SELECT name FROM schema_migrations", logger).map { try $0["name"].decode(String.self) })
            for (position, migration) in PostgresMigrations.all.enumerated() where !applied.contains(migration.name) {
                for statement in migration.statements { try await connection.query(statement, logger: logger) }
                try await connection.query(
                    "INSERT INTO schema_migrations (name, position) VALUES (\(migration.name), \(position))", logger: logger)
            }
        }
    }

    public func appliedMigrations() async throws -> [String] {
        try await run("SELECT name FROM schema_migrations ORDER BY position").map { try $0["name"].decode(String.self) }
    }
}
#endif
