import Foundation
import Synchronization

/// A request as the fake server received it.
public struct ReceivedRequest: Sendable {
    public var method: String
    public var path: String
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: Data
    /// When the whole request had arrived.
    public var receivedAt: ContinuousClock.Instant
}

/// What the fake server sends back, step by step, so tests can script timing and faults exactly.
public struct ScriptedResponse: Sendable {
    public enum Step: Sendable {
        /// Bytes sent as one HTTP chunk (a separate TCP write).
        case bytes(Data)
        /// Waits before the next step.
        case pause(Duration)
        /// Waits until the client closes the connection (or 30 s pass): a stalled server.
        case waitForClientClose
        /// Closes the connection at once: a reset after the request arrived, before any answer.
        case hangUp
    }
    public enum Ending: Sendable {
        /// The terminating zero-length chunk, then close.
        case complete
        /// Close the socket mid-body: what a dropped connection looks like to the client.
        case abort
    }

    public var status: Int
    public var headers: [String: String]
    /// Steps before the status line is sent (a server that takes its time to answer at all).
    public var beforeHead: [Step]
    public var steps: [Step]
    public var ending: Ending

    public init(status: Int, headers: [String: String] = [:], beforeHead: [Step] = [], steps: [Step] = [], ending: Ending = .complete) {
        self.status = status
        self.headers = headers
        self.beforeHead = beforeHead
        self.steps = steps
        self.ending = ending
    }

    /// A complete JSON answer.
    public static func json(_ status: Int, _ body: String, headers: [String: String] = [:]) -> ScriptedResponse {
        var all = headers
        all["Content-Type"] = "application/json"
        return ScriptedResponse(status: status, headers: all, steps: [.bytes(Data(body.utf8))])
    }
}

/// A minimal HTTP/1.1 server over POSIX sockets on 127.0.0.1, port chosen by the kernel.
///
/// Written for tests that need full control of the wire: every response is chunked, each scripted
/// step is its own TCP write, and a response can stall or be cut off mid-body. One thread accepts,
/// one thread serves each connection. Like Telegram's and the providers' front ends, a connection
/// stays open for the next request after a complete response (HTTP/1.1 keep-alive) unless the
/// client asked to close it; `keepAlive: false` closes every connection after its response.
public final class FakeHTTPServer: Sendable {
    public let port: Int
    private let listener: Int32
    private let keepAlive: Bool
    private let handler: @Sendable (ReceivedRequest) -> ScriptedResponse
    private let disconnects = Mutex<Int>(0)
    private let stopped = Mutex(false)
    /// Connections open now. A descriptor is closed only under this lock, so `shutdown` never
    /// touches a number the process has reused for something else.
    private let open = Mutex<Set<Int32>>([])
    private let accepted = Atomic<Int>(0)

    public init(keepAlive: Bool = true, handler: @escaping @Sendable (ReceivedRequest) -> ScriptedResponse) throws {
        self.handler = handler
        self.keepAlive = keepAlive
        (listener, port) = try listenOnLoopback()
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "fake-http-accept"
        thread.start()
    }

    /// How many times a client closed a connection while the server was still sending or waiting.
    public var clientDisconnects: Int { disconnects.withLock { $0 } }

    /// How many connections clients have opened so far.
    public var connectionsAccepted: Int { accepted.load(ordering: .relaxed) }

    /// Stops accepting connections and ends the open ones, as a server that goes down does. Only
    /// the accept thread closes the listening socket, so its descriptor number can never be reused
    /// under a thread that still uses it.
    public func shutdown() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        Glibc.shutdown(listener, Int32(SHUT_RDWR))
        open.withLock { fds in
            for fd in fds { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    private func acceptLoop() {
        defer { close(listener) }
        while !stopped.withLock({ $0 }) {
            let client = acceptClosingOnExec(listener)
            guard client >= 0 else { return }
            var yes: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
            accepted.add(1, ordering: .relaxed)
            open.withLock { _ = $0.insert(client) }
            if stopped.withLock({ $0 }) { Glibc.shutdown(client, Int32(SHUT_RDWR)) }
            let thread = Thread { [self] in serve(client) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            open.withLock { fds in
                fds.remove(fd)
                close(fd)
            }
        }
        var carry = Data()
        while let request = readRequest(fd, carry: &carry) {
            guard respond(to: request, fd) else { return }
        }
    }

    /// Answers one request; true when the connection stays open for the next one.
    private func respond(to request: ReceivedRequest, _ fd: Int32) -> Bool {
        let response = handler(request)
        for step in response.beforeHead where !perform(step, fd) { return false }

        let keepOpen = keepAlive && request.headers["connection"]?.lowercased() != "close"
        var head = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "Transfer-Encoding: chunked\r\n"
        head += keepOpen ? "\r\n" : "Connection: close\r\n\r\n"
        guard send(fd, Data(head.utf8)) else { return false }
        for step in response.steps where !perform(step, fd) { return false }
        guard case .complete = response.ending else { return false }
        return send(fd, Data("0\r\n\r\n".utf8)) && keepOpen
    }

    /// Returns false when the client has gone away.
    private func perform(_ step: ScriptedResponse.Step, _ fd: Int32) -> Bool {
        switch step {
        case .bytes(let data):
            guard !data.isEmpty else { return true }
            var chunk = Data(String(data.count, radix: 16).utf8)
            chunk.append(contentsOf: Array("\r\n".utf8))
            chunk.append(data)
            chunk.append(contentsOf: Array("\r\n".utf8))
            if send(fd, chunk) { return true }
        case .pause(let duration):
            Thread.sleep(forTimeInterval: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
            return true
        case .hangUp:
            break
        case .waitForClientClose:
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            var buffer = [UInt8](repeating: 0, count: 512)
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if poll(&poller, 1, 50) > 0 {
                    let count = recv(fd, &buffer, buffer.count, 0)
                    if count <= 0 { break }
                }
            }
        }
        disconnects.withLock { $0 += 1 }
        return false
    }

    private func send(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let sent = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if sent <= 0 { return false }
                offset += sent
            }
            return true
        }
    }

    /// Reads one request; bytes past its end stay in `carry` for the next one.
    private func readRequest(_ fd: Int32, carry: inout Data) -> ReceivedRequest? {
        var data = carry
        carry = Data()
        var buffer = [UInt8](repeating: 0, count: 16_384)
        let separator = Data("\r\n\r\n".utf8)
        var headEnd = data.range(of: separator)
        while headEnd == nil {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            data.append(contentsOf: buffer[0..<count])
            headEnd = data.range(of: separator)
        }
        let headText = String(decoding: data[..<headEnd!.lowerBound], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if headers["expect"]?.lowercased() == "100-continue" {
            _ = send(fd, Data("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        var body = Data(data[headEnd!.upperBound...])
        let expected = Int(headers["content-length"] ?? "0") ?? 0
        while body.count < expected {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            body.append(contentsOf: buffer[0..<count])
        }
        if body.count > expected {
            carry = Data(body[(body.startIndex + expected)...])
            body = Data(body.prefix(expected))
        }
        return ReceivedRequest(
            method: String(requestLine[0]), path: String(requestLine[1]), headers: headers, body: body, receivedAt: .now)
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 409: "Conflict"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

public enum FakeServerError: Error {
    case socket(Int32)
}

/// Lets this process hold `wanted` descriptors (a thousand connections at both ends), as far as
/// the hard limit allows.
public func raiseOpenFileLimit(to wanted: rlim_t) {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    if limit.rlim_cur < wanted {
        limit.rlim_cur = min(wanted, limit.rlim_max)
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// Once per process, before the first fake server listens: the whole hard limit. The tests run
/// side by side and hold some 4,700 descriptors at the peak, past the soft limit of 1,024 or 4,096
/// that many machines start a process with.
let openFileLimitRaised: Void = {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    raiseOpenFileLimit(to: limit.rlim_max)
}()

/// `accept`, with the new descriptor closed on exec: a child such as `pg_ctl start` must not
/// inherit a test server's connection and keep it open after the test closes it (the client would
/// then never see the end).
///
/// Returns -1 only once the listener is shut down. Any other failure is retried, as a real server
/// does (a fake that stopped accepting left every later client of its test hanging until a
/// timeout): a client that reset its connection before it was accepted (`ECONNABORTED`, and the
/// network errors Linux passes on from a pending connection), or a moment without descriptors or
/// memory (a burst test holds thousands of sockets), after which it waits 10 ms first.
func acceptClosingOnExec(_ listener: Int32) -> Int32 {
    while true {
        let fd = accept(listener, nil, nil)
        if fd >= 0 {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            return fd
        }
        let error = errno
        if error == EBADF || error == EINVAL || error == ENOTSOCK { return -1 }
        // Rare enough to say, so that a test that fails after it can be explained.
        let message = "fake server: accept failed (\(String(cString: strerror(error)))); trying again\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error) { usleep(10_000) }
    }
}

/// A TCP connection to `host` (an IPv4 address) and `port`, closed on exec; nil when it fails.
func connectTCP(host: String = "127.0.0.1", port: Int) -> Int32? {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return nil }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// A listening TCP socket on 127.0.0.1 with a port the kernel picks: the descriptor and the port.
func listenOnLoopback() throws -> (Int32, Int) {
    _ = openFileLimitRaised
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw FakeServerError.socket(errno) }
    var yes: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    // A deep backlog: a thousand clients may connect at once.
    guard bound == 0, listen(fd, 1024) == 0 else {
        close(fd)
        throw FakeServerError.socket(errno)
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
