import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// The store on SQLite, the default: one file, one process. Calls are synchronous and short (WAL, one
/// transaction each), so they also complete inside a cancelled task: a stopped reply is still saved.
public final class SQLiteStore: Store {
    private let writer: any DatabaseWriter
    /// Where the database is (":memory:" for a private one), for error messages.
    let path: String
    /// How long a statement waits for another process's lock before it fails, in seconds.
    private let busyTimeout: Double
    /// The wall clock rows are stamped with (injected: tests of retention move it).
    let now: @Sendable () -> Date
    /// Writes of this process that have started and not ended (see `write`).
    private let writesUnderWay = Atomic<Int>(0)
    /// Commits are synced to the disk (`synchronous=FULL`), except those of writes that need not be
    /// (`write(durable: false)`).
    private let syncsCommits: Bool
    /// Writes begun so far whose commit syncs the disk (what a reply costs in `fdatasync`s, for tests).
    let durableCommits = Atomic<Int>(0)

    /// Opens (creating if needed, mode 0600) the database at `path` and migrates it. A statement waits
    /// up to `busyTimeout` seconds for another process's write lock, then fails with a `StoreError`
    /// saying so; opening takes that lock too, so a database held elsewhere fails at start.
    public init(
        path: String, busyTimeout: Double = 5, durability: Durability = .full, now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.path = path
        self.now = now
        self.busyTimeout = busyTimeout
        syncsCommits = durability == .full
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let files = FileManager.default
        do {
            if !files.fileExists(atPath: directory) {
                try files.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
        } catch {
            throw StoreError(description: "cannot create the database directory \(directory) (check that its parent exists and is writable)")
        }
        if let created = try PrivateFile.create(path) { close(created) }
        guard access(path, R_OK | W_OK) == 0, access(directory, W_OK) == 0 else {
            throw StoreError(description: "the database \(path) is not writable (check the owner and permissions of the file and its directory)")
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        // Reads are short; two readers beside the writer keep memory down (each has its own cache).
        configuration.maximumReaderCount = 2
        let synchronous = durability == .full ? "FULL" : "NORMAL"
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            try pool.writeWithoutTransaction { db in
                // GRDB switches the writer to WAL and then to synchronous=NORMAL after
                // `prepareDatabase` has run: set the durability again on the one connection that
                // commits (it stays open for the pool's life).
                try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
                // Freed pages go back to the file system (see `compact`). A database made before
                // this is rebuilt once to switch; a new one switches before it has any table.
                if try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") != 2 {
                    try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                    try db.execute(sql: "VACUUM")
                }
            }
            try Migrations.migrator.migrate(pool)
            writer = pool
        } catch let error as DatabaseError {
            throw StoreError(error, path: path, busyTimeout: busyTimeout)
        }
    }

    /// The time `age` seconds before now, as a column holds it (see `TimeStamp`).
    func stamp(ago age: TimeInterval = 0) -> String {
        TimeStamp.text(now().addingTimeInterval(-age))
    }

    /// A private in-memory database, for tests and throwaway runs.
    public init(now: @escaping @Sendable () -> Date = { Date() }) throws {
        path = ":memory:"
        self.now = now
        busyTimeout = 0
        syncsCommits = false
        let queue = try DatabaseQueue()
        try Migrations.migrator.migrate(queue)
        writer = queue
    }

    /// Runs `body` in a write transaction. It is not cancelled with the calling task, so a stopped
    /// reply is still saved. An SQLite failure becomes a `StoreError` that says what to do.
    ///
    /// `durable: false` commits without syncing the disk (`synchronous=NORMAL` for that commit): the
    /// write is as safe as any from a crash of the process, and a power cut can roll it back only
    /// together with every later commit up to the next durable one, which syncs it along (the WAL is
    /// one file, written in order). For writes that nothing outside the process relies on before a
    /// durable commit follows.
    ///
    /// With no other write of this process under way, it runs right here, on the calling thread:
    /// handing it to GRDB's queue and back would cost two thread wake-ups, more than a short commit.
    /// Behind another write, or when another process holds the write lock (an operator's `sqlite3`
    /// session), it waits on GRDB's queue instead, suspending its task rather than holding a thread.
    /// In the bot the calling thread is the HTTP event thread, so a commit that syncs holds every
    /// transfer for as long as the disk takes (0.3–0.6 ms here, three times a reply); sending those
    /// to GRDB's queue measured 4% more CPU and 12 more context switches per reply, for no change a
    /// user could see (drafts change once a second).
    func write<T: Sendable>(durable: Bool = true, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let (writer, path, busyTimeout) = (self.writer, self.path, self.busyTimeout)
        let lazy = syncsCommits && !durable
        if syncsCommits && durable { durableCommits.add(1, ordering: .relaxed) }
        defer { writesUnderWay.subtract(1, ordering: .relaxed) }
        if writesUnderWay.add(1, ordering: .relaxed).newValue == 1,
            let done = try Result(catching: { try Self.writeUnlessLocked(writer, busyTimeout: busyTimeout, lazy: lazy, body) })
                .mapError({ Self.explain($0, path: path, busyTimeout: busyTimeout) }).get()
        {
            return done.value
        }
        return try await withCheckedThrowingContinuation { continuation in
            writer.asyncWriteWithoutTransaction { db in
                continuation.resume(
                    with: Result { try Self.unsynced(db, if: lazy) { try Self.transaction(db, body) } }
                        .mapError { Self.explain($0, path: path, busyTimeout: busyTimeout) })
            }
        }
    }

    /// `body` in an immediate transaction, committed.
    private static func transaction<T>(_ db: Database, _ body: (Database) throws -> T) throws -> T {
        var value: T?
        try db.inTransaction(.immediate) {
            value = try body(db)
            return .commit
        }
        return value!
    }

    /// `transaction` (a commit) with `synchronous=NORMAL` when `lazy`, FULL again after it.
    private static func unsynced<T>(_ db: Database, if lazy: Bool, _ transaction: () throws -> T) throws -> T {
        guard lazy else { return try transaction() }
        try db.cachedStatement(sql: "PRAGMA synchronous = NORMAL").execute()
        let result = Result { try transaction() }
        try db.cachedStatement(sql: "PRAGMA synchronous = FULL").execute()
        return try result.get()
    }

    /// `body` in a transaction, right away; nil, with nothing done, when another process holds
    /// the write lock (the transaction's start does not wait for it).
    private static func writeUnlessLocked<T>(
        _ writer: any DatabaseWriter, busyTimeout: Double, lazy: Bool, _ body: (Database) throws -> T
    ) throws -> Done<T>? {
        guard busyTimeout > 0 else { return Done(value: try writer.write(body)) }  // in memory: no other process
        return try writer.writeWithoutTransaction { db -> Done<T>? in
            // The connection's busy handler, off for the transaction's start only.
            sqlite3_busy_timeout(db.sqliteConnection, 0)
            var began = false
            defer { if !began { sqlite3_busy_timeout(db.sqliteConnection, Int32(busyTimeout * 1000)) } }
            var value: T?
            do {
                try unsynced(db, if: lazy) {
                    try db.inTransaction(.immediate) {
                        began = true
                        sqlite3_busy_timeout(db.sqliteConnection, Int32(busyTimeout * 1000))
                        value = try body(db)
                        return .commit
                    }
                }
            } catch let error as DatabaseError where !began && error.resultCode == .SQLITE_BUSY {
                return nil
            }
            return value.map(Done.init)
        }
    }

    /// A write's result (which may itself be an optional).
    private struct Done<T> {
        let value: T
    }

    /// Runs `body` on a consistent snapshot, on the calling thread: in WAL mode a read waits for no
    /// lock (only, for a moment, for one of the pool's two readers when both are busy).
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try Result { try writer.read(body) }.mapError { Self.explain($0, path: path, busyTimeout: busyTimeout) }.get()
    }

    /// A GRDB failure in an operator's terms; anything else as it is.
    private static func explain(_ error: any Error, path: String, busyTimeout: Double) -> any Error {
        (error as? DatabaseError).map { StoreError($0, path: path, busyTimeout: busyTimeout) } ?? error
    }

    /// A read that blocks its thread: for tests' counters only.
    func readNow<T>(_ body: (Database) throws -> T) throws -> T {
        try writer.read(body)
    }

    /// `PRAGMA synchronous` on the connection that commits (2 is FULL).
    func synchronousLevel() throws -> Int {
        try writer.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// Pages in the database file (for the size it takes on disk).
    func pageCount() throws -> Int {
        try readNow { try Int.fetchOne($0, sql: "PRAGMA page_count") ?? 0 }
    }

    /// Gives the pages that deleted rows left free back to the file system, so the file shrinks.
    /// It counts as a write under way, so a write meanwhile waits on GRDB's queue, not in a thread.
    public func compact() async throws {
        let (writer, path, busyTimeout) = (self.writer, self.path, self.busyTimeout)
        writesUnderWay.add(1, ordering: .relaxed)
        defer { writesUnderWay.subtract(1, ordering: .relaxed) }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            writer.asyncWriteWithoutTransaction { db in
                continuation.resume(with: Result { try db.execute(sql: "PRAGMA incremental_vacuum") }
                    .mapError { Self.explain($0, path: path, busyTimeout: busyTimeout) })
            }
        }
    }

    /// Forgets turns older than `age` (`HISTORY_RETENTION_DAYS`); conversations and their totals stay.
    /// Returns how many turns were deleted.
    @discardableResult
    public func deleteMessages(olderThan age: TimeInterval) async throws -> Int {
        try await write { db in
            try db.run("DELETE FROM message WHERE created_at < ?", [self.stamp(ago: age)])
            return db.changesCount
        }
    }

    /// The names of the migrations applied so far, oldest first.
    public func appliedMigrations() async throws -> [String] {
        try await read { try Migrations.migrator.appliedMigrations($0) }
    }

    // MARK: Conversations

    /// A new conversation.
    public func createConversation(kind: String, externalID: Int64?) async throws -> ConversationRecord {
        try await write { db in
            let now = self.stamp()
            try db.run(
                "INSERT INTO conversation (kind, external_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
                [kind, externalID, now, now])
            return try ConversationRecord.find(db, key: db.lastInsertedRowID)
        }
    }

    /// The conversation for an external id (a Telegram chat), created on first use.
    public func conversation(kind: String, externalID: Int64) async throws -> ConversationRecord {
        if let existing = try await read({ db in
            try ConversationRecord.fetchOne(
                db.cachedStatement(sql: "SELECT * FROM conversation WHERE kind = ? AND external_id = ?"), arguments: [kind, externalID])
        }) {
            return existing
        }
        // Looked up again inside the write: another task may have created it in between.
        return try await write(durable: false) { db in
            let now = self.stamp()
            try db.run(
                """
                    INSERT INTO conversation (kind, external_id, created_at, updated_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (kind, external_id) DO NOTHING
                    """, [kind, externalID, now, now])
            guard
                let conversation = try ConversationRecord.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM conversation WHERE kind = ? AND external_id = ?"), arguments: [kind, externalID])
            else { throw StoreError(description: "the conversation just saved could not be read back") }
            return conversation
        }
    }

    public func conversation(id: Int64) async throws -> ConversationRecord? {
        try await read { try ConversationRecord.fetchOne($0, key: id) }
    }

    /// The most recently used conversation of a kind (the terminal chat resumes it).
    public func latestConversation(kind: String) async throws -> ConversationRecord? {
        try await read { db in
            try ConversationRecord.filter(ConversationRecord.Columns.kind == kind)
                .order(ConversationRecord.Columns.updatedAt.desc, ConversationRecord.Columns.id.desc).fetchOne(db)
        }
    }

    /// Sets (or with `nil`, resets) the conversation's model.
    public func setModel(_ model: String?, conversationID: Int64) async throws {
        try await update(conversationID, "model = ?", [model.databaseValue])
    }

    public func setWindowStart(_ messageID: Int64, conversationID: Int64) async throws {
        try await update(conversationID, "window_start_message_id = ?", [messageID.databaseValue])
    }

    public func setSummary(_ summary: String, throughMessageID: Int64, conversationID: Int64) async throws {
        try await update(conversationID, "summary = ?, summary_through_message_id = ?", [summary.databaseValue, throughMessageID.databaseValue])
    }

    /// Forgets the conversation's history and summary; its totals stay.
    public func clear(conversationID: Int64) async throws {
        try await write { db in
            try db.run("DELETE FROM message WHERE conversation_id = ?", [conversationID])
            try db.run(
                """
                    UPDATE conversation SET summary = NULL, summary_through_message_id = 0,
                    window_start_message_id = 0, updated_at = ? WHERE id = ?
                    """,
                [self.stamp(), conversationID])
        }
    }

    private func update(_ conversationID: Int64, _ assignments: String, _ values: [DatabaseValue]) async throws {
        try await write { db in
            try db.run(
                "UPDATE conversation SET \(assignments), updated_at = ? WHERE id = ?",
                StatementArguments(values + [self.stamp().databaseValue, conversationID.databaseValue]))
        }
    }

    /// An external chat changed its id (a group became a supergroup): its conversation moves to the
    /// new id, history intact, unless the new id already has one.
    public func moveConversation(kind: String, from oldID: Int64, to newID: Int64) async throws {
        try await write { db in
            let existing = ConversationRecord.filter(ConversationRecord.Columns.kind == kind && ConversationRecord.Columns.externalID == newID)
            if try !existing.isEmpty(db) { return }
            try ConversationRecord.filter(ConversationRecord.Columns.kind == kind && ConversationRecord.Columns.externalID == oldID)
                .updateAll(db, ConversationRecord.Columns.externalID.set(to: newID), ConversationRecord.Columns.updatedAt.set(to: self.stamp()))
        }
    }

    /// Totals over every conversation of `kind`.
    public func totals(kind: String) async throws -> ConversationTotals {
        try await read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) AS conversations, COALESCE(SUM(requests), 0) AS requests, COALESCE(SUM(prompt_tokens), 0) AS prompt,
                    COALESCE(SUM(completion_tokens), 0) AS completion, COALESCE(SUM(cost_usd), 0) AS cost,
                    COALESCE(SUM(images), 0) AS images, COALESCE(SUM(audio_seconds), 0) AS audio
                    FROM conversation WHERE kind = ?
                    """, arguments: [kind])
            return ConversationTotals(
                conversations: row?["conversations"] ?? 0, requests: row?["requests"] ?? 0, promptTokens: row?["prompt"] ?? 0,
                completionTokens: row?["completion"] ?? 0, costUSD: row?["cost"] ?? 0, images: row?["images"] ?? 0,
                audioSeconds: row?["audio"] ?? 0)
        }
    }

    // MARK: Messages

    /// Saves a turn with its attachments and returns it with its id. `moveWindow` moves the
    /// conversation's window start in the same commit (the request for this turn was planned
    /// before it had an id). `alongWith` are update status changes committed in the same transaction; `inputCostUSD` (a transcription's) is added to the
    /// conversation's cost, and the attachments to its image and audio counts.
    @discardableResult
    public func appendMessage(
        conversationID: Int64, role: MessageRecord.Role, content: String, status: MessageRecord.Status, model: String?,
        attachments: [Attachment], inputCostUSD: Double, moveWindow: WindowMove?, alongWith changes: [UpdateStatusChange], durable: Bool
    ) async throws -> MessageRecord {
        try await write(durable: durable) { db in
            for change in changes { try self.apply(change, db) }
            let message = try self.insertMessage(
                db, conversationID: conversationID, role: role, content: content, status: status, model: model, tokens: nil)
            if let moveWindow {
                let start = switch moveWindow {
                case .to(let id): id
                case .toNewTurn: message.id
                }
                try db.run("UPDATE conversation SET window_start_message_id = ? WHERE id = ?", [start, conversationID])
            }
            guard !attachments.isEmpty || inputCostUSD != 0 else { return message }
            for attachment in attachments {
                try db.run(
                    """
                        INSERT INTO attachment (message_id, kind, mime_type, data, width, height, seconds, transcript, source_id,
                        withheld, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    [
                        message.id, attachment.kind, attachment.mimeType, attachment.data.map { Data($0) }, attachment.width,
                        attachment.height, attachment.seconds, attachment.transcript, attachment.sourceID, attachment.withheld, message.createdAt,
                    ])
            }
            let images = attachments.filter { $0.kind == .image }.count
            let seconds = attachments.filter { $0.kind == .audio }.reduce(0) { $0 + ($1.seconds ?? 0) }
            try db.run(
                "UPDATE conversation SET images = images + ?, audio_seconds = audio_seconds + ?, cost_usd = cost_usd + ? WHERE id = ?",
                [images, seconds, inputCostUSD, conversationID])
            return message
        }
    }

    /// The newest attachment that came from `sourceID` (a Telegram file_unique_id) in the
    /// conversation, with its turn's text: a reply to a photo or voice note the bot has seen reuses
    /// it instead of downloading the file again.
    public func attachment(sourceID: String, conversationID: Int64) async throws -> (attachment: Attachment, turn: String)? {
        try await read { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT attachment.*, message.content AS turn FROM attachment JOIN message ON message.id = attachment.message_id
                        WHERE attachment.source_id = ? AND message.conversation_id = ? ORDER BY attachment.id DESC LIMIT 1
                        """, arguments: [sourceID, conversationID])
            else { return nil }
            return (try AttachmentRecord(row: row).attachment, row["turn"])
        }
    }

    /// The model cannot see images: every image of the conversation goes as a placeholder from now on.
    public func withholdImages(conversationID: Int64) async throws {
        try await write { db in
            try db.run(
                """
                    UPDATE attachment SET withheld = 1 WHERE kind = 'image' AND message_id IN
                    (SELECT id FROM message WHERE conversation_id = ?)
                    """, [conversationID])
        }
    }

    private func insertMessage(
        _ db: Database, conversationID: Int64, role: MessageRecord.Role, content: String, status: MessageRecord.Status,
        model: String?, tokens: CallRecord.Tokens?
    ) throws -> MessageRecord {
        let now = self.stamp()
        // SQLite hands text back up to its first NUL: keep the rest of the turn, with a visible mark.
        let content = content.utf8.contains(0) ? content.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : content
        try db.run(
            """
                INSERT INTO message (conversation_id, role, content, status, model, prompt_tokens,
                completion_tokens, usage_estimated, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            [
                conversationID, role, content, status, model, tokens?.prompt, tokens?.completion,
                tokens?.estimated ?? false, now, now,
            ])
        let id = db.lastInsertedRowID
        try db.run("UPDATE conversation SET updated_at = ? WHERE id = ?", [now, conversationID])
        guard let saved = try MessageRecord.fetchOne(db.cachedStatement(sql: "SELECT * FROM message WHERE id = ?"), arguments: [id]) else {
            throw StoreError(description: "the turn just saved could not be read back")
        }
        return saved
    }

    /// A conversation and the turns a request may use (from its window start, not failed, oldest
    /// first), read together from one snapshot; nil when there is no such conversation.
    public func context(conversationID: Int64) async throws -> ConversationContext? {
        // Cached statements: this runs before every model call.
        try await read { db in
            guard
                let conversation = try ConversationRecord.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM conversation WHERE id = ?"), arguments: [conversationID])
            else { return nil }
            let window: StatementArguments = [conversationID, conversation.windowStartMessageID]
            let turns = try MessageRecord.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM message WHERE conversation_id = ? AND id >= ? AND status != 'failed' ORDER BY id"),
                arguments: window)
            var attachments: [Int64: [Attachment]] = [:]
            // Only images go into requests: a conversation that never had one has none to look for.
            guard conversation.images > 0 else {
                return ConversationContext(conversation: conversation, turns: turns)
            }
            let rows = try AttachmentRecord.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT attachment.* FROM attachment JOIN message ON message.id = attachment.message_id
                        WHERE message.conversation_id = ? AND message.id >= ? AND message.status != 'failed' ORDER BY attachment.id
                        """), arguments: window)
            for row in rows { attachments[row.messageID, default: []].append(row.attachment) }
            return ConversationContext(conversation: conversation, turns: turns, attachments: attachments)
        }
    }

    /// Every turn of the conversation, failed ones included, oldest first.
    public func allMessages(conversationID: Int64) async throws -> [MessageRecord] {
        try await read { db in
            try MessageRecord.filter(MessageRecord.Columns.conversationID == conversationID).order(MessageRecord.Columns.id).fetchAll(db)
        }
    }

    /// Turns in `afterID < id < beforeID` that are not failed: what falls out of the window.
    public func messages(conversationID: Int64, after afterID: Int64, before beforeID: Int64) async throws -> [MessageRecord] {
        try await read { db in
            try MessageRecord
                .filter(MessageRecord.Columns.conversationID == conversationID && MessageRecord.Columns.id > afterID && MessageRecord.Columns.id < beforeID && MessageRecord.Columns.status != MessageRecord.Status.failed)
                .order(MessageRecord.Columns.id).fetchAll(db)
        }
    }

    /// Turns that will be remembered (not failed).
    public func messageCount(conversationID: Int64) async throws -> Int {
        try await read { db in
            try MessageRecord.filter(MessageRecord.Columns.conversationID == conversationID && MessageRecord.Columns.status != MessageRecord.Status.failed).fetchCount(db)
        }
    }

    /// Saves the outcome of a model call: the reply (if any), the user turn's fate, and the totals.
    public func record(_ call: CallRecord, conversationID: Int64, durable: Bool) async throws {
        try await write(durable: durable) { db in
            if let reply = call.reply {
                _ = try self.insertMessage(
                    db, conversationID: conversationID, role: .assistant, content: reply.text, status: reply.status,
                    model: reply.model, tokens: call.tokens)
            } else if call.failed, !call.keepsTurn {
                try db.run(
                    "UPDATE message SET status = 'failed', updated_at = ? WHERE id = ?",
                    [self.stamp(), call.userMessageID])
            }
            try db.run(
                """
                    UPDATE conversation SET requests = requests + 1, failures = failures + ?,
                    prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ?,
                    usage_estimated = usage_estimated OR ?, cost_usd = cost_usd + ?,
                    last_latency_ms = COALESCE(?, last_latency_ms), last_ttft_ms = COALESCE(?, last_ttft_ms),
                    updated_at = ? WHERE id = ?
                    """,
                [
                    call.failed ? 1 : 0, call.tokens?.prompt ?? 0, call.tokens?.completion ?? 0,
                    call.tokens?.estimated ?? false, call.costUSD, call.latencyMs, call.ttftMs, self.stamp(), conversationID,
                ])
        }
    }
}

extension Database {
    /// Runs `sql` through the connection's statement cache: the store's statements are few and run
    /// for every message, and compiling them each time cost more than running them.
    func run(_ sql: String, _ arguments: StatementArguments = []) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}
