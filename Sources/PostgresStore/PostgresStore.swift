// PostgresStore: the storage API on PostgreSQL, for replicas that share one database (Cluster build).
//
// Owns: the PostgreSQL schema (the same named migrations as SQLite's), the connection pool, and
// turning PostgreSQL's failures into `StoreError`s.
// Imports: AssistantStore, Support, PostgresNIO. Never imports: the wire protocols or anything above.
#if Cluster
import AssistantStore
import Foundation
import Logging
import PostgresNIO
import Support
import Synchronization

/// The store on PostgreSQL. Every call is one transaction on a pooled connection; a lost connection
/// fails the call with a `StoreError` (the rules for a failed write already keep the update
/// unconfirmed), and the pool connects again on the next call.
public final class PostgresStore: Store {
    let client: PostgresClient
    private let running: Task<Void, Never>
    public let location: PostgresLocation
    let now: @Sendable () -> Date
    let logger: Logger
    /// How long a call waits for a connection while no other call finishes before it fails (the
    /// server is down or unreachable). A pool that is only busy serves other calls meanwhile, and
    /// the wait goes on while it does: a burst must queue, not fail.
    let leaseTimeout: Duration
    /// Calls that finished their work on a pooled connection: the server is serving.
    private let served = Atomic<Int>(0)
    /// How long a call's statements may take on their connection before the call fails and the
    /// connection is closed. A server that went away mid-query can leave the query waiting for
    /// ever (postgres-nio does not always fail it when the connection drops, and a silent network
    /// never does), and that call would hold up its caller, and with it a shutdown, for good. Every
    /// statement of this bot touches a few rows; only migrations (which may wait for another
    /// replica's) go without a limit.
    let answerTimeout: Duration
    /// Replicas: the heartbeat's own connection (`SharedStore`).
    let heartbeatConnection: DedicatedConnection

    /// Connects, migrates (under a lock, so replicas starting together migrate once) and returns
    /// the store; fails with a `StoreError` saying what is wrong.
    public static func open(
        _ location: PostgresLocation, maximumConnections: Int = 8, leaseTimeout: Duration = .seconds(5),
        answerTimeout: Duration = .seconds(10), now: @escaping @Sendable () -> Date = { Date() }, logger: Logger
    ) async throws -> PostgresStore {
        let store = PostgresStore(
            location, maximumConnections: maximumConnections, leaseTimeout: leaseTimeout, answerTimeout: answerTimeout, now: now, logger: logger)
        do {
            try await checkConnection(location, logger: logger)
            try await store.migrate()
        } catch {
            store.close()
            throw error
        }
        return store
    }

    private init(
        _ location: PostgresLocation, maximumConnections: Int, leaseTimeout: Duration, answerTimeout: Duration,
        now: @escaping @Sendable () -> Date, logger: Logger
    ) {
        self.location = location
        self.leaseTimeout = leaseTimeout
        self.answerTimeout = answerTimeout
        self.now = now
        self.logger = logger
        heartbeatConnection = DedicatedConnection(location, id: 3, logger: logger)
        let tls: PostgresClient.Configuration.TLS =
            switch location.tls {
            case .disable: .disable
            case .prefer: .prefer(Self.unverifiedTLS)
            case .require: .require(Self.unverifiedTLS)
            case .verifyFull: .require(.makeClientConfiguration())
            }
        var configuration =
            if let socket = location.unixSocketPath {
                PostgresClient.Configuration(
                    unixSocketPath: socket, username: location.user, password: location.password, database: location.database)
            } else {
                PostgresClient.Configuration(
                    host: location.host, port: location.port, username: location.user, password: location.password,
                    database: location.database, tls: tls)
            }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        if let schema = location.schema { configuration.options.additionalStartupParameters = [("search_path", schema)] }
        // PostgresNIO's own logs carry queries' metadata; ours say what failed in `StoreError`s.
        var quiet = logger
        quiet.logLevel = .critical
        let client = PostgresClient(configuration: configuration, backgroundLogger: quiet)
        self.client = client
        running = Task { await client.run() }
    }

    deinit {
        running.cancel()
    }

    /// One connection outside the pool, closed at once: the pool would retry a refused password or
    /// a missing database until its caller gives up, where this one says which it is.
    private static func checkConnection(_ location: PostgresLocation, logger: Logger) async throws {
        do {
            let connection = try await PostgresConnection.connect(configuration: try connectionConfiguration(location), id: 0, logger: logger)
            try await connection.close()
        } catch {
            throw StoreError(postgres: error, location: location)
        }
    }

    /// One connection's configuration, for connections outside the pool.
    static func connectionConfiguration(_ location: PostgresLocation) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socket = location.unixSocketPath {
            configuration = .init(unixSocketPath: socket, username: location.user, password: location.password, database: location.database)
        } else {
            let tls: PostgresConnection.Configuration.TLS =
                switch location.tls {
                case .disable: .disable
                case .prefer: .prefer(try NIOSSLContext(configuration: unverifiedTLS))
                case .require: .require(try NIOSSLContext(configuration: unverifiedTLS))
                case .verifyFull: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
                }
            configuration = .init(
                host: location.host, port: location.port, username: location.user, password: location.password, database: location.database,
                tls: tls)
        }
        configuration.options.connectTimeout = .seconds(5)
        if let schema = location.schema { configuration.options.additionalStartupParameters = [("search_path", schema)] }
        return configuration
    }

    /// TLS that encrypts without checking the certificate (libpq's `prefer` and `require`).
    private static var unverifiedTLS: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        return configuration
    }

    /// Closes the pool (and the heartbeat's connection).
    public func close() {
        running.cancel()
        let heartbeat = heartbeatConnection
        Task { await heartbeat.close() }
    }

    // MARK: Transactions

    /// Runs `body` in a transaction on a pooled connection. It runs in its own task, so it is not
    /// cancelled with the caller's (a stopped reply is still saved); a failure becomes a `StoreError`.
    /// `durable: false` commits without waiting for the server's WAL flush (`synchronous_commit`
    /// off for this transaction); the next durable commit flushes it along.
    func write<T: Sendable>(
        withoutTimeLimit: Bool = false, durable: Bool = true, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let logger = self.logger
        return try await leased(answerWithin: withoutTimeLimit ? nil : answerTimeout) { connection in
            try await connection.withTransaction(logger: logger) { connection in
                if !durable { try await connection.query("SET LOCAL synchronous_commit TO OFF", logger: logger) }
                return try await body(connection)
            }
        }
    }

    /// Runs `body` on one snapshot (a read-only, repeatable-read transaction).
    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = self.logger
        return try await write { connection in
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
            return try await body(connection)
        }
    }

    /// One statement, outside a transaction: for reads and writes that are a single statement.
    func run(_ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        let logger = self.logger
        return try await leased(answerWithin: answerTimeout) { connection in try await connection.rows(query, logger) }
    }

    /// Runs `body` on a pooled connection, in a task of its own (not cancelled with the caller's).
    /// While the server is unreachable the pool would wait for a connection forever: after
    /// `leaseTimeout` without one, and without any other call finishing meanwhile, the call fails
    /// with a `StoreError` instead, and the caller's rules for a failed write apply. Once `body`
    /// has its connection it runs to the end, or for `limit`: then its connection is closed (which
    /// rolls the transaction back) and the call fails.
    private func leased<T: Sendable>(
        answerWithin limit: Duration?, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let (client, location, timeout) = (self.client, self.location, self.leaseTimeout)
        return try await Task {
            let leased = Flag()
            do {
                return try await withThrowingTaskGroup(of: Optional<T>.self) { group in
                    group.addTask {
                        try await client.withConnection { connection in
                            leased.set()
                            let value: T
                            if let limit {
                                do {
                                    value = try await abandoning(after: limit) { try await body(connection) }
                                } catch is DeadlineExceeded {
                                    try? await connection.close()
                                    throw StoreError(
                                        description: "the PostgreSQL server of \(location) did not answer within \(limit): closed that connection")
                                }
                            } else {
                                value = try await body(connection)
                            }
                            self.served.add(1, ordering: .relaxed)
                            return value
                        }
                    }
                    group.addTask {
                        // A busy pool, not a lost server, while other calls go on finishing.
                        var seen = self.served.load(ordering: .relaxed)
                        while true {
                            try await Task.sleep(for: timeout)
                            let now = self.served.load(ordering: .relaxed)
                            if now == seen { return nil }
                            seen = now
                        }
                    }
                    while let result = try await group.next() {
                        if let value = result {
                            group.cancelAll()
                            return value
                        }
                        if !leased.isSet {
                            group.cancelAll()
                            throw StoreError(
                                description: """
                                    cannot reach the PostgreSQL server of \(location) (no connection within \(timeout)): check that it \
                                    runs and that DATABASE_URL is right
                                    """)
                        }
                    }
                    throw CancellationError()
                }
            } catch {
                throw StoreError(postgres: error, location: location)
            }
        }.value
    }
}

/// Set once, read from any task: a call has its connection, a listener listened.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

extension PostgresConnection {
    /// Runs a statement and collects its rows.
    func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRandomAccessRow] {
        var rows: [PostgresRandomAccessRow] = []
        for try await row in try await self.query(query, logger: logger) { rows.append(row.makeRandomAccess()) }
        return rows
    }
}

extension StoreError {
    /// A PostgreSQL failure in an operator's terms: where, and the server's message, never the
    /// statement, its values or the password.
    init(postgres error: any Error, location: PostgresLocation) {
        if let error = error as? StoreError {
            self = error
            return
        }
        if let transaction = error as? PostgresTransactionError,
            let cause = transaction.closureError ?? transaction.beginError ?? transaction.commitError ?? transaction.rollbackError
        {
            self.init(postgres: cause, location: location)
            return
        }
        guard let error = error as? PSQLError else {
            self.init(description: "the PostgreSQL database \(location) failed: \(type(of: error))")
            return
        }
        switch error.code {
        case .sslUnsupported:
            self.init(description: "the PostgreSQL server of \(location) does not offer TLS, which sslmode=\(location.tls.rawValue) requires")
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed, .failedToAddSSLHandler:
            self.init(description: "cannot reach the PostgreSQL server of \(location) (\(error.code)): check that it runs and that DATABASE_URL is right")
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            let message = error.serverInfo?[.message] ?? "an error"
            switch state {
            case "28P01", "28000":
                self.init(description: "PostgreSQL refused the user of \(location): \(message) (check DATABASE_URL's user and password)")
            case "3D000":
                self.init(description: "the database of \(location) does not exist: create it (createdb) or fix DATABASE_URL")
            case "53100":
                self.init(description: "the disk holding the PostgreSQL database \(location) is full")
            case _ where state.hasPrefix("08") || state.hasPrefix("57"):
                self.init(description: "the PostgreSQL server of \(location) dropped the connection (\(message))")
            default:
                self.init(description: "the PostgreSQL database \(location) failed: \(message) (SQLSTATE \(state))")
            }
        case .authMechanismRequiresPassword:
            self.init(description: "PostgreSQL asks for a password that DATABASE_URL does not give (\(location))")
        default:
            self.init(description: "the PostgreSQL database \(location) failed (\(error.code))")
        }
    }
}
#endif
