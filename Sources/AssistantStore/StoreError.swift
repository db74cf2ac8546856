import GRDB

/// Why the database could not be used; says which file and what to do, never SQL or saved text.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// An update was to become `answering` but is no longer `received`: something else (another
    /// replica) answers it or has answered it. Nothing was written; the caller stays silent.
    public private(set) var isUpdateTaken = false

    public init(description: String) {
        self.description = description
    }

    public static func updateTaken(_ updateID: Int64) -> StoreError {
        var error = StoreError(description: "update \(updateID) is answered elsewhere (it is no longer waiting)")
        error.isUpdateTaken = true
        return error
    }

    /// Explains an SQLite failure on the database at `path` in an operator's terms.
    init(_ error: DatabaseError, path: String, busyTimeout: Double) {
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            self.init(
                description: """
                    the database \(path) is locked by another process (waited \(String(format: "%g", busyTimeout)) s): \
                    stop the other telegram-assistant using it, or end the open transaction in an sqlite3 shell
                    """)
        case .SQLITE_READONLY:
            self.init(
                description: """
                    the database \(path) is read-only (check the owner and permissions of the file and its \
                    directory, and that the disk is not mounted read-only)
                    """)
        case .SQLITE_FULL:
            self.init(description: "the disk holding the database \(path) is full")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            self.init(description: "the database \(path) is damaged or is not an SQLite database: restore it from a backup")
        default:
            self.init(description: "the database \(path) failed: \(error.message ?? "SQLite error \(error.resultCode.rawValue)")")
        }
    }
}
