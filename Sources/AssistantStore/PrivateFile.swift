import Foundation

/// Files the bot keeps beside its database (the database itself, the instance lock).
enum PrivateFile {
    /// Creates `path` with mode 0600 and returns its descriptor, or nil when it already exists; an
    /// existing file is never opened here, since closing any descriptor of a database this process
    /// has open would drop SQLite's locks on it. A file created by root takes the owner of its
    /// directory: `telegram-assistant check` run as root in the service's state directory must not
    /// leave a database the service's own user cannot write. (SQLite does the same for -wal and -shm.)
    static func create(_ path: String) throws(StoreError) -> Int32? {
        let fd = Glibc.open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { return nil }
            throw StoreError(description: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        var directory = stat()
        if geteuid() == 0, stat(URL(fileURLWithPath: path).deletingLastPathComponent().path, &directory) == 0 {
            _ = fchown(fd, directory.st_uid, directory.st_gid)
        }
        return fd
    }

    /// Opens `path` for reading and writing, creating it as `create` does when it is missing.
    static func open(_ path: String) throws(StoreError) -> Int32 {
        if let created = try create(path) { return created }
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            throw StoreError(description: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }
}
