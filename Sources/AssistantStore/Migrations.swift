import GRDB

/// The schema, one named migration per change. Never edit a shipped migration: add a new one.
enum Migrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: conversations and messages") { db in
            try db.create(table: "conversation") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("kind", .text).notNull()
                t.column("external_id", .integer)
                t.column("model", .text)
                t.column("summary", .text)
                t.column("summary_through_message_id", .integer).notNull().defaults(to: 0)
                t.column("window_start_message_id", .integer).notNull().defaults(to: 0)
                t.column("requests", .integer).notNull().defaults(to: 0)
                t.column("failures", .integer).notNull().defaults(to: 0)
                t.column("prompt_tokens", .integer).notNull().defaults(to: 0)
                t.column("completion_tokens", .integer).notNull().defaults(to: 0)
                t.column("usage_estimated", .boolean).notNull().defaults(to: false)
                t.column("cost_usd", .double).notNull().defaults(to: 0)
                t.column("last_latency_ms", .integer)
                t.column("last_ttft_ms", .integer)
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
                t.uniqueKey(["kind", "external_id"])
            }
            try db.create(table: "message") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("conversation_id", .integer).notNull()
                    .references("conversation", onDelete: .cascade)
                t.column("role", .text).notNull()
                    .check(sql: "role IN ('system', 'user', 'assistant')")
                t.column("content", .text).notNull()
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('complete', 'partial', 'failed')")
                t.column("model", .text)
                t.column("prompt_tokens", .integer)
                t.column("completion_tokens", .integer)
                t.column("usage_estimated", .boolean).notNull().defaults(to: false)
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
            }
            try db.create(index: "message_by_conversation", on: "message", columns: ["conversation_id", "id"])
        }
        migrator.registerMigration("v2: telegram updates") { db in
            // Every update is written here before its offset is confirmed to Telegram, and marked
            // as it is handled: a restart resumes what was received but not answered, and never
            // answers the same update twice.
            try db.create(table: "telegram_update") { t in
                t.primaryKey("update_id", .integer)
                t.column("chat_id", .integer)
                t.column("payload", .text).notNull()
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('received', 'answering', 'handled')")
                t.column("received_at", .datetime).notNull()
                t.column("handled_at", .datetime)
            }
            try db.create(index: "telegram_update_open", on: "telegram_update", columns: ["status", "update_id"])
            try db.create(table: "telegram_state") { t in
                t.primaryKey("key", .text)
                t.column("value", .integer).notNull()
            }
        }
        migrator.registerMigration("v3: pending replies") { db in
            // A final answer waiting to be delivered, saved before its first part is sent: a
            // restart delivers the rest from here instead of asking the model again.
            try db.alter(table: "telegram_update") { t in
                t.add(column: "reply", .text)  // the final text as JSON, until the update is handled
                t.add(column: "reply_parts_sent", .integer).notNull().defaults(to: 0)
                t.add(column: "stream_message_id", .integer)  // a message being edited (groups)
                t.add(column: "stream_part", .integer)
            }
        }
        migrator.registerMigration("v4: attachments") { db in
            // What a turn was made from besides its text: an image (kept as bytes, re-sent while its
            // turn is in the window) or a voice note (its transcript is the turn's text). `source_id`
            // is Telegram's file_unique_id: a reply to the same photo or voice note reuses the row.
            try db.create(table: "attachment") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("message_id", .integer).notNull().references("message", onDelete: .cascade)
                t.column("kind", .text).notNull().check(sql: "kind IN ('image', 'audio')")
                t.column("mime_type", .text).notNull()
                t.column("data", .blob)
                t.column("width", .integer)
                t.column("height", .integer)
                t.column("seconds", .integer)
                t.column("transcript", .text)
                t.column("source_id", .text)
                // The model said it cannot see images: from then on a placeholder goes instead.
                t.column("withheld", .boolean).notNull().defaults(to: false)
                t.column("created_at", .datetime).notNull()
            }
            try db.create(index: "attachment_by_message", on: "attachment", columns: ["message_id"])
            try db.create(index: "attachment_by_source", on: "attachment", columns: ["source_id"])
            try db.alter(table: "conversation") { t in
                t.add(column: "images", .integer).notNull().defaults(to: 0)
                t.add(column: "audio_seconds", .integer).notNull().defaults(to: 0)
            }
        }
        migrator.registerMigration("v5: replicas and chat leases") { db in
            // Used where several replicas share one database (PostgreSQL, `SharedStore`): which
            // replicas are alive, and which one answers each chat. Here only so that both backends
            // keep the same named migrations.
            try db.create(table: "replica") { t in
                t.primaryKey("id", .text)
                t.column("expires_at", .datetime).notNull()
            }
            try db.create(table: "chat_lease") { t in
                t.primaryKey("chat_id", .integer)
                t.column("replica", .text).notNull()
            }
        }
        return migrator
    }
}
