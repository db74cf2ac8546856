#if Cluster
import AssistantStore
import Foundation
import Logging
import PostgresNIO
import Support
import Synchronization

/// Replicas and chat leases (see `SharedStore`). A lease names a replica; it holds while that
/// replica's heartbeat has not expired, so a dead replica's chats free themselves without anyone
/// deleting anything. Claims and releases are single transactions that cannot hand a chat to two
/// live replicas: a claim only takes a row whose replica is not alive, and PostgreSQL checks that
/// again on the newest row when two claims meet.
extension PostgresStore: SharedStore {
    /// On a connection of its own: a pool busy with a burst's queries must not delay a heartbeat
    /// until the others think this replica dead.
    public func heartbeat(replica: String, timeout: Duration) async throws -> Int {
        let logger = self.logger
        return try await heartbeatConnection.transaction { connection in
            try await connection.query(
                """
                INSERT INTO replica (id, expires_at) VALUES (\(replica), now() + make_interval(secs => \(timeout.seconds)))
                ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
                """, logger: logger)
            // Upkeep: void leases and long-gone replicas are only clutter.
            try await connection.query(
                "DELETE FROM chat_lease l WHERE NOT EXISTS (SELECT 1 FROM replica r WHERE r.id = l.replica AND r.expires_at > now())",
                logger: logger)
            try await connection.query("DELETE FROM replica WHERE expires_at < now() - interval '1 hour'", logger: logger)
            return try await connection.rows("SELECT count(*) AS alive FROM replica WHERE expires_at > now()", logger)
                .first.map { try $0["alive"].decode(Int.self) } ?? 1
        }
    }

    public func leave(replica: String) async throws {
        let logger = self.logger
        try await write { connection in
            try await connection.query("DELETE FROM chat_lease WHERE replica = \(replica)", logger: logger)
            try await connection.query("DELETE FROM replica WHERE id = \(replica)", logger: logger)
        }
    }

    public func claimChats(replica: String, replicas: Int) async throws -> ChatClaim {
        let logger = self.logger
        return try await write { connection in
            // Done with: nothing of the chat is open (handled is an answer's last step).
            try await connection.query(
                """
                DELETE FROM chat_lease l WHERE l.replica = \(replica) AND NOT EXISTS (
                    SELECT 1 FROM telegram_update u WHERE COALESCE(u.chat_id, 0) = l.chat_id AND u.status <> 'handled')
                """, logger: logger)
            // Chats with open updates that no live replica holds, oldest first, up to this
            // replica's share; always in the same order, so that two claims never deadlock.
            try await connection.query(
                """
                WITH open_chat AS (
                    SELECT COALESCE(chat_id, 0) AS chat, min(update_id) AS first FROM telegram_update
                    WHERE status <> 'handled' GROUP BY 1
                ), share AS (
                    SELECT GREATEST(0, CEIL((SELECT count(*) FROM open_chat)::float8 / \(max(1, replicas)))::bigint
                        - (SELECT count(*) FROM chat_lease WHERE replica = \(replica))) AS n
                )
                INSERT INTO chat_lease (chat_id, replica)
                SELECT chat, \(replica) FROM open_chat o
                WHERE NOT EXISTS (
                    SELECT 1 FROM chat_lease l JOIN replica r ON r.id = l.replica WHERE l.chat_id = o.chat AND r.expires_at > now())
                ORDER BY first LIMIT (SELECT n FROM share)
                ON CONFLICT (chat_id) DO UPDATE SET replica = excluded.replica
                WHERE NOT EXISTS (SELECT 1 FROM replica r WHERE r.id = chat_lease.replica AND r.expires_at > now())
                """, logger: logger)
            let chats = try await connection.rows("SELECT chat_id FROM chat_lease WHERE replica = \(replica)", logger)
                .map { try $0["chat_id"].decode(Int64.self) }
            let updates = try await connection.rows(
                """
                SELECT \(unescaped: Self.storedUpdateColumns) FROM telegram_update
                WHERE status <> 'handled' AND COALESCE(chat_id, 0) IN (SELECT chat_id FROM chat_lease WHERE replica = \(replica))
                ORDER BY update_id
                """, logger
            ).map(Self.storedUpdate)
            return ChatClaim(chats: Set(chats), updates: updates)
        }
    }

    public func holds(_ chatID: Int64, replica: String) async throws -> Bool {
        try await !run(
            """
            SELECT 1 AS held FROM chat_lease l JOIN replica r ON r.id = l.replica
            WHERE l.chat_id = \(chatID) AND l.replica = \(replica) AND r.expires_at > now()
            """
        ).isEmpty
    }

    /// The channel that `saveReceived` notifies: one per schema, as each schema is a bot.
    var updatesChannel: String { "telegram_update_saved_" + (location.schema ?? "public") }

    public func updatesSaved() -> AsyncStream<Void> {
        let (location, channel, logger) = (self.location, updatesChannel, self.logger)
        return AsyncStream { continuation in
            let listening = Task {
                var failures = 0
                while !Task.isCancelled {
                    do {
                        let connection = try await PostgresConnection.connect(
                            configuration: try Self.connectionConfiguration(location), id: 2, logger: logger)
                        let listened = Flag()
                        // A connection that listened counts as a success: its end is a new outage.
                        defer { if listened.isSet { failures = 0 } }
                        do {
                            // The notifications end when the connection closes, but a connection whose
                            // server went away may just stay silent, and a query on it may never end:
                            // checked now and then, and left behind (closed) when it does not answer.
                            try await abandoning({
                                try await connection.listen(on: channel) { notifications in
                                    listened.set()
                                    continuation.yield()  // what was saved while nobody listened
                                    for try await _ in notifications { continuation.yield() }
                                }
                            }) {
                                while true {
                                    try await Task.sleep(for: .seconds(5))
                                    _ = try await abandoning(after: .seconds(5)) { try await connection.rows("SELECT 1 AS alive", logger) }
                                }
                            }
                        } catch {
                            try? await connection.close()
                            throw error
                        }
                        try? await connection.close()
                    } catch {
                        if Task.isCancelled { break }
                        failures += 1
                        if failures == 1 {
                            logger.warning("listen_failed", metadata: ["error_type": "storage", "error": "\(StoreError(postgres: error, location: location))"])
                        }
                        continuation.yield()  // the caller looks for itself meanwhile
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in listening.cancel() }
        }
    }
}

/// One connection outside the pool, made when first needed and again after it failed.
final class DedicatedConnection: Sendable {
    private let location: PostgresLocation
    private let logger: Logger
    private let id: Int
    private let connection = Mutex<PostgresConnection?>(nil)

    init(_ location: PostgresLocation, id: Int, logger: Logger) {
        self.location = location
        self.id = id
        self.logger = logger
    }

    /// Runs `body` in a transaction; a failure closes the connection, and is a `StoreError`.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let (location, logger) = (self.location, self.logger)
        do {
            let current: PostgresConnection
            if let open = connection.withLock({ $0 }), !open.isClosed {
                current = open
            } else {
                current = try await PostgresConnection.connect(
                    configuration: try PostgresStore.connectionConfiguration(location), id: id, logger: logger)
                connection.withLock { $0 = current }
            }
            do {
                // A connection whose server went away can leave a query waiting for ever.
                return try await abandoning(after: .seconds(10)) { try await current.withTransaction(logger: logger) { try await body($0) } }
            } catch {
                connection.withLock { $0 = nil }
                try? await current.close()
                throw error
            }
        } catch {
            throw StoreError(postgres: error, location: location)
        }
    }

    deinit {
        // A connection must be closed before it goes (postgres-nio checks).
        if let current = connection.withLock({ $0 }) { Task { try? await current.close() } }
    }

    func close() async {
        let current = connection.withLock { connection -> PostgresConnection? in
            defer { connection = nil }
            return connection
        }
        try? await current?.close()
    }
}
#endif
