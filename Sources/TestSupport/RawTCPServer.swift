import Foundation
import Synchronization

/// A TCP server on 127.0.0.1 that answers with exactly the bytes a test scripts: for the HTTP
/// client's own tests (Content-Length bodies, heads that come slowly or never, connections cut
/// mid-body, a server that never reads). One thread per connection.
public final class RawTCPServer: Sendable {
    public enum Action: Sendable {
        /// Reads the request head and as many body bytes as its Content-Length says.
        case readRequest
        case send([UInt8])
        case pause(Duration)
        /// Waits until the client closes the connection (or 30 s pass).
        case waitForClientClose
        /// Sleeps without reading anything until the client closes (or 30 s pass).
        case ignoreClient
    }

    public let port: Int
    private let listener: Int32
    private let script: @Sendable (_ connection: Int) -> [Action]
    private let stopped = Mutex(false)
    private let record = Mutex<(connections: Int, requests: [String], sent: Int, closedByClient: Int)>((0, [], 0, 0))

    /// `script` is asked once per connection (numbered from 0) for what to do.
    public init(script: @escaping @Sendable (_ connection: Int) -> [Action]) throws {
        self.script = script
        (listener, port) = try listenOnLoopback()
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Stops accepting. Only the first call touches the socket, and only the accept thread closes
    /// it: a descriptor number that is closed may at once belong to another test's socket.
    public func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        if first { Glibc.shutdown(listener, Int32(SHUT_RDWR)) }
    }

    /// Whether anything accepts connections on 127.0.0.1:`port`.
    public static func isListening(port: Int) -> Bool {
        guard let fd = connectTCP(port: port) else { return false }
        close(fd)
        return true
    }

    /// Request heads received so far, in order (text up to the blank line).
    public var requests: [String] { record.withLock { $0.requests } }
    /// Bytes written to clients so far.
    public var bytesSent: Int { record.withLock { $0.sent } }
    /// Connections the client closed while the server waited or wrote.
    public var clientCloses: Int { record.withLock { $0.closedByClient } }

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            let client = acceptClosingOnExec(listener)
            guard client >= 0 else { return }
            let number = record.withLock { record in
                defer { record.connections += 1 }
                return record.connections
            }
            let actions = script(number)
            Thread { [self] in serve(client, actions) }.start()
        }
    }

    private func serve(_ fd: Int32, _ actions: [Action]) {
        defer { close(fd) }
        for action in actions {
            switch action {
            case .readRequest:
                guard let head = readRequest(fd) else { return clientClosed() }
                record.withLock { $0.requests.append(head) }
            case .send(let bytes):
                var offset = 0
                while offset < bytes.count {
                    let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if sent <= 0 { return clientClosed() }
                    offset += sent
                    record.withLock { $0.sent += sent }
                }
            case .pause(let duration):
                Thread.sleep(forTimeInterval: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
            case .waitForClientClose, .ignoreClient:
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                var buffer = [UInt8](repeating: 0, count: 65_536)
                let deadline = Date().addingTimeInterval(30)
                while Date() < deadline {
                    if case .ignoreClient = action {
                        // Not reading: only a hang-up (which poll reports even unasked) ends it.
                        poller.events = 0
                    }
                    if poll(&poller, 1, 20) > 0 {
                        if poller.revents & Int16(POLLHUP | POLLERR) != 0 { return clientClosed() }
                        if recv(fd, &buffer, buffer.count, 0) <= 0 { return clientClosed() }
                    }
                }
                return
            }
        }
    }

    private func clientClosed() {
        record.withLock { $0.closedByClient += 1 }
    }

    private func readRequest(_ fd: Int32) -> String? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        let separator: [UInt8] = [13, 10, 13, 10]
        while true {
            if let end = data.firstRange(of: separator) {
                let head = String(decoding: data[..<end.lowerBound], as: UTF8.self)
                let length = head.split(separator: "\r\n").compactMap { line -> Int? in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                    return Int(parts[1].trimmingCharacters(in: .whitespaces))
                }.first ?? 0
                var body = data.count - end.upperBound
                while body < length {
                    let count = recv(fd, &buffer, buffer.count, 0)
                    guard count > 0 else { return nil }
                    body += count
                }
                return head
            }
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            data += buffer[0..<count]
        }
    }
}
