import Foundation

/// Files the bot keeps beside its database (the database itself, the instance lock).
enum PrivateFile {
    /// Opens `path` for reading and writing, creating it with mode 0600 if needed. A file created by
    /// root takes the owner of its directory: `telegram-assistant check` run as root in the service's
    /// state directory must not leave a database the service's own user cannot write. (SQLite gives
    /// its -wal and -shm files the database's owner the same way.)
    static func open(_ path: String) throws(StoreError) -> Int32 {
        let created = Glibc.open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
        if created >= 0 {
            var directory = stat()
            if geteuid() == 0, stat(URL(fileURLWithPath: path).deletingLastPathComponent().path, &directory) == 0 {
                _ = fchown(created, directory.st_uid, directory.st_gid)
            }
            return created
        }
        let existing = errno == EEXIST ? Glibc.open(path, O_RDWR | O_CLOEXEC) : -1
        guard existing >= 0 else {
            throw StoreError(description: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        return existing
    }
}
