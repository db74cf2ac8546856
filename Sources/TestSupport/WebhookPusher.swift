import Foundation
import Synchronization

/// Posts JSON to a webhook the way the Bot API server does: one update in flight per chat (the next
/// of a chat waits for the answer to the one before), chats in parallel up to `max_connections`,
/// the secret in `X-Telegram-Bot-Api-Secret-Token`, and an update that is not answered 2xx sent
/// again later. Plain blocking sockets on threads of its own: HTTP/1.1, one request per connection.
final class WebhookPusher: Sendable {
    /// The outcome of one post: the HTTP status, or nil when nothing answered.
    typealias Posted = @Sendable (_ updateID: Int64, _ status: Int?) -> Void

    struct Target: Sendable, Equatable {
        var url: URL
        var secret: String
        var maxConnections: Int
    }

    private let inFlight = Mutex<(chats: Set<Int64>, connections: Int)>(([], 0))

    /// Starts posting `update` unless its chat has one in flight or every connection is busy;
    /// returns whether it started.
    func post(_ update: String, id: Int64, chatID: Int64, to target: Target, posted: @escaping Posted) -> Bool {
        let started = inFlight.withLock { state -> Bool in
            guard !state.chats.contains(chatID), state.connections < target.maxConnections else { return false }
            state.chats.insert(chatID)
            state.connections += 1
            return true
        }
        guard started else { return false }
        Thread.detachNewThread { [self] in
            let status = Self.send(update, to: target)
            // Recorded before the chat is free: the next pump must not post an update answered 200 again.
            posted(id, status)
            inFlight.withLock { state in
                state.chats.remove(chatID)
                state.connections -= 1
            }
        }
        return true
    }

    /// One POST; the status, or nil when the connection failed or nothing came back in 30 s.
    static func send(_ body: String, to target: Target, withSecret: Bool = true) -> Int? {
        guard let host = target.url.host, let port = target.url.port else { return nil }
        guard let fd = connectTCP(host: host == "localhost" ? "127.0.0.1" : host, port: port) else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let payload = Array(body.utf8)
        let path = target.url.path.isEmpty ? "/" : target.url.path
        let head = """
            POST \(path) HTTP/1.1\r
            Host: \(host):\(port)\r
            Content-Type: application/json\r
            Content-Length: \(payload.count)\r
            \(withSecret ? "X-Telegram-Bot-Api-Secret-Token: \(target.secret)\r\n" : "")Connection: close\r
            \r

            """
        let request = Array(head.utf8) + payload
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return nil }
            sent += count
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !answer.contains(10) {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            answer += buffer[..<count]
        }
        // "HTTP/1.1 200 OK"
        let statusLine = String(decoding: answer.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        return statusLine.count >= 2 ? Int(statusLine[1]) : nil
    }
}
