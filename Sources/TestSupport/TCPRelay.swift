import Foundation
import Synchronization

/// A TCP relay on 127.0.0.1 to a real server (PostgreSQL), that a test can make go silent: while
/// silent, it keeps every connection open and swallows what either side sends, as a server does
/// whose host vanished behind a firewall, or that hangs. New connections are accepted meanwhile and
/// get the same treatment. One thread per connection.
public final class TCPRelay: Sendable {
    public let port: Int
    private let target: Int
    private let listener: Int32
    private let state = Mutex<(silent: Bool, stopped: Bool)>((false, false))

    public init(to target: Int) throws {
        self.target = target
        (listener, port) = try listenOnLoopback()
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// From now on nothing passes, in either direction, until `speak()`.
    public func silence() { state.withLock { $0.silent = true } }

    /// Bytes pass again (on connections opened from now on; those silenced are left as they are).
    public func speak() { state.withLock { $0.silent = false } }

    /// Stops accepting; connections end when either side closes.
    public func stop() {
        let first = state.withLock { state in
            defer { state.stopped = true }
            return !state.stopped
        }
        if first { Glibc.shutdown(listener, Int32(SHUT_RDWR)) }
    }

    deinit { stop() }

    private var silent: Bool { state.withLock { $0.silent } }

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            let client = acceptClosingOnExec(listener)
            guard client >= 0 else { return }
            Thread.detachNewThread { [self] in relay(client) }
        }
    }

    private func relay(_ client: Int32) {
        defer { close(client) }
        guard let server = connectTCP(port: target) else { return }
        defer { close(server) }
        // A connection silenced once stays silent: what it swallowed is gone, so it could only
        // carry garbage afterwards.
        var swallowing = false
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: server, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            guard poll(&fds, 2, 1000) >= 0 || errno == EINTR else { return }
            if state.withLock({ $0.stopped }) && swallowing { return }
            for (index, source) in fds.enumerated() where fds[index].revents != 0 {
                let count = read(source.fd, &buffer, buffer.count)
                guard count > 0 else { return }  // either side closed: close both
                if silent { swallowing = true }
                if swallowing { continue }
                let destination = index == 0 ? server : client
                var sent = 0
                while sent < count {
                    let written = buffer.withUnsafeBytes { write(destination, $0.baseAddress! + sent, count - sent) }
                    guard written > 0 else { return }
                    sent += written
                }
            }
        }
    }
}
