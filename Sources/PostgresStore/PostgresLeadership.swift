#if Cluster
import AssistantStore
import Foundation
import Logging
import PostgresNIO
import Support

/// Which replica leads: the one holding a PostgreSQL advisory lock on a connection of its own. The
/// lock lives as long as that session, so a replica that dies, or loses the database, lets go by
/// itself, and another takes over under the rules of a restart (the ledger says what is open).
///
/// The leader polls Telegram and answers; the others wait. The ledger stays the arbiter even for
/// the moment two replicas might both think they lead: an update is new to exactly one of them.
public final class PostgresLeadership: Sendable {
    private let connection: PostgresConnection
    private let key: String
    private let logger: Logger
    public let location: PostgresLocation

    /// A connection of its own to the store's database (outside the pool, which could hand the
    /// session that holds the lock to someone else).
    public static func connect(_ location: PostgresLocation, logger: Logger) async throws -> PostgresLeadership {
        do {
            let connection = try await PostgresConnection.connect(
                configuration: PostgresStore.connectionConfiguration(location), id: 1, logger: logger)
            return PostgresLeadership(connection: connection, location: location, logger: logger)
        } catch {
            throw StoreError(postgres: error, location: location)
        }
    }

    private init(connection: PostgresConnection, location: PostgresLocation, logger: Logger) {
        self.connection = connection
        self.location = location
        self.logger = logger
        key = "telegram-assistant leader of " + (location.schema ?? "public")
    }

    deinit {
        let connection = connection
        Task { try? await connection.close() }
    }

    /// Tries once; true when this replica leads now.
    public func tryToLead() async throws -> Bool {
        let (connection, key, logger) = (self.connection, self.key, self.logger)
        do {
            let rows = try await abandoning(after: .seconds(10)) {
                try await connection.rows("SELECT pg_try_advisory_lock(hashtext(\(key))) AS leads", logger)
            }
            return try rows.first?["leads"].decode(Bool.self) ?? false
        } catch {
            throw StoreError(postgres: error, location: location)
        }
    }

    /// Returns once this replica leads, trying every `interval`.
    public func waitToLead(every interval: Duration, clock: any Clock<Duration> = ContinuousClock()) async throws {
        while try await !tryToLead() {
            try await clock.sleep(for: interval)
        }
    }

    /// Returns when the lock may be gone: its session failed a check (made every `interval`), or
    /// did not answer one within a second or `interval` (a connection whose server went away can
    /// leave a query waiting for ever); then the connection is closed.
    public func lost(checkingEvery interval: Duration, clock: any Clock<Duration> = ContinuousClock()) async throws {
        let (connection, logger) = (self.connection, self.logger)
        while true {
            try await clock.sleep(for: interval)
            do {
                _ = try await abandoning(after: max(interval, .seconds(1)), clock: clock) { try await connection.rows("SELECT 1 AS alive", logger) }
            } catch {
                try? await connection.close()
                return
            }
        }
    }

    /// Lets go now (a graceful stop: the next replica need not wait for the session to time out).
    public func resign() async {
        try? await connection.close()
    }
}
#endif
