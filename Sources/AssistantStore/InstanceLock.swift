import Foundation

/// One bot process per database: two pollers on one database would mix their chats and fight over
/// the update offset. An advisory `flock` on "<database>.lock" holding the owner's pid; the kernel
/// releases it when the process ends, however it ends, so a crash never leaves a stale lock.
/// (A separate file, because closing any descriptor of the database itself would drop SQLite's locks.)
public final class InstanceLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock or throws a `StoreError` naming the process that holds it.
    public init(databasePath: String) throws {
        let path = databasePath + ".lock"
        let fd = try PrivateFile.open(path)
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = Self.readPID(fd).map { " (pid \($0))" } ?? ""
            close(fd)
            throw StoreError(
                description: """
                    another telegram-assistant\(holder) is running a bot on the database \(databasePath): \
                    stop it first, or give this one its own DATABASE_PATH
                    """)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = pread(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        return Int32(String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
