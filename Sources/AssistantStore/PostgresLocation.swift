import Foundation

/// Where a PostgreSQL database is, read from `DATABASE_URL` in libpq's URL form:
/// `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=…&schema=…`, or over a Unix socket,
/// `postgres://USER@/DATABASE?host=/var/run/postgresql`. Parsed in every build, so that a bad URL
/// fails at start with the rest of the configuration; only the Cluster build can open it.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    /// libpq's `sslmode`, the four that matter.
    public enum TLSMode: String, Sendable, CaseIterable {
        /// Never encrypt.
        case disable
        /// Encrypt when the server offers it, without checking its certificate (libpq's default).
        case prefer
        /// Always encrypt; do not check the certificate.
        case require
        /// Always encrypt, and check the certificate against the system's CAs and the host name.
        case verifyFull = "verify-full"
    }

    /// A TCP host, or the directory of a Unix socket (starts with `/`).
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    /// The schema the tables live in (`search_path`): several bots can share one database, one
    /// schema each. Nil: the server's default (`public`).
    public var schema: String?

    public init(
        host: String, port: Int = 5432, user: String, password: String? = nil, database: String, tls: TLSMode = .prefer, schema: String? = nil
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.schema = schema
    }

    /// The socket's path, when `host` is a directory.
    public var unixSocketPath: String? {
        host.hasPrefix("/") ? "\(host)/.s.PGSQL.\(port)" : nil
    }

    /// True for a `postgres://` or `postgresql://` URL: the one way to ask for PostgreSQL.
    public static func isPostgresURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses a URL; the error says what is wrong without repeating the password.
    public init(url text: String) throws(StoreError) {
        guard Self.isPostgresURL(text), let components = URLComponents(string: text) else {
            throw StoreError(description: "DATABASE_URL must look like postgres://USER:PASSWORD@HOST:5432/DATABASE")
        }
        var socketDirectory: String?
        var tls = TLSMode.prefer
        var schema: String?
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    throw StoreError(
                        description: "DATABASE_URL: sslmode must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", ")), not \(value)")
                }
                tls = mode
            case "schema":
                guard Self.isPlainIdentifier(value) else {
                    throw StoreError(description: "DATABASE_URL: schema must be lower-case letters, digits and _ (starting with a letter or _), not \(value)")
                }
                schema = value
            case "host":
                guard value.hasPrefix("/") else { throw StoreError(description: "DATABASE_URL: the host parameter must be a socket directory") }
                socketDirectory = value
            default:
                throw StoreError(description: "DATABASE_URL: unknown parameter \(item.name) (known: sslmode, schema, host)")
            }
        }
        let host = socketDirectory ?? components.host ?? ""
        guard !host.isEmpty else {
            throw StoreError(description: "DATABASE_URL has no host: postgres://USER@HOST/DATABASE, or ?host=/run/postgresql for a socket")
        }
        guard let user = components.user, !user.isEmpty else { throw StoreError(description: "DATABASE_URL has no user name") }
        let database = String(components.path.dropFirst())
        guard !database.isEmpty, !database.contains("/") else {
            throw StoreError(description: "DATABASE_URL must name one database after the host: postgres://…/DATABASE")
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw StoreError(description: "DATABASE_URL: the port must be 1-65535") }
        self.init(
            host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: port, user: user, password: components.password,
            database: database, tls: tls, schema: schema)
    }

    /// The URL without its password, for logs and errors.
    public var description: String {
        let authority = host.hasPrefix("/") ? "\(user)@" : "\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)"
        var parameters: [String] = []
        if host.hasPrefix("/") { parameters.append("host=\(host)") }
        if tls != .prefer { parameters.append("sslmode=\(tls.rawValue)") }
        if let schema { parameters.append("schema=\(schema)") }
        return "postgres://\(authority)/\(database)" + (parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&"))
    }

    private static func isPlainIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first == "_" || ("a"..."z").contains(first) else { return false }
        return text.count <= 63 && text.unicodeScalars.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }
}
