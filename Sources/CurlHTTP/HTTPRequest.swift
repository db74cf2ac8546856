import FoundationEssentials

/// One HTTP request. The body, if any, is sent with a `Content-Length`.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: URL
    /// Sent in this order. Names are case-insensitive on the wire.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    /// Ends the transfer when no byte arrives for this long (libcurl's low-speed limit), whether
    /// waiting for the answer or in the middle of its body. `nil`: no limit beyond the caller's own.
    public var idleTimeout: Duration?
    /// Ends the transfer when it has not completed (body and all) within this long.
    public var totalTimeout: Duration?
    /// Hands the body to its reader at most this often: the first bytes go at once, then the
    /// transfer rests (libcurl stops reading the socket) until the interval is over and whatever
    /// came meanwhile goes in one batch. For a stream of small events whose reader does not need
    /// each one at once, this turns a wake-up per event into a wake-up per interval.
    public var deliveryInterval: Duration?

    public init(
        method: String = "GET", url: URL, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil,
        idleTimeout: Duration? = nil, totalTimeout: Duration? = nil, deliveryInterval: Duration? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.idleTimeout = idleTimeout
        self.totalTimeout = totalTimeout
        self.deliveryInterval = deliveryInterval
    }

    /// Sets a header, replacing any with the same name.
    public mutating func setHeader(_ name: String, _ value: String) {
        headers.removeAll { $0.name.lowercased() == name.lowercased() }
        headers.append((name, value))
    }
}

/// The status line and headers of a response whose body is still arriving.
public struct HTTPStreamingResponse: Sendable {
    public let status: Int
    /// Header names are lower-cased; a repeated header keeps its last value.
    public let headers: [String: String]
    /// The body as it arrives: everything that came in one wake-up of the event thread, at once.
    /// Dropping the body (or cancelling the task that reads it) aborts the transfer.
    public let body: HTTPBody
}

/// A whole response: status, lower-cased headers and body.
public struct HTTPResponse: Sendable {
    public let status: Int
    public let headers: [String: String]
    public let body: [UInt8]
}

/// The body of a streamed response, in batches of bytes.
public struct HTTPBody: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let owner: Owner

    public func makeAsyncIterator() -> Iterator { Iterator(owner: owner) }

    public struct Iterator: AsyncIteratorProtocol {
        let owner: Owner
        /// Throws `HTTPClientError` when the transfer fails, `CancellationError` when it was cancelled.
        public mutating func next() async throws -> [UInt8]? { try await owner.transfer.next() }

        /// Changes `HTTPRequest.deliveryInterval` from the next hand-over on: a reader that needs the
        /// first bytes at once and the rest only now and then turns batching on once it has them.
        public func deliver(every interval: Duration?) { owner.transfer.deliver(every: interval) }
    }

    /// Reads the rest of the body. Throws `HTTPClientError.Kind.bodyTooLarge` past `limit` bytes.
    public func collect(upTo limit: Int) async throws -> [UInt8] {
        var all: [UInt8] = []
        for try await bytes in self {
            if all.isEmpty { all = bytes } else { all += bytes }
            if all.count > limit { throw HTTPClientError(.bodyTooLarge) }
        }
        return all
    }

    /// Ends the transfer when the last copy of the body (and of its iterators) is gone.
    final class Owner: Sendable {
        let transfer: Transfer
        init(_ transfer: Transfer) { self.transfer = transfer }
        deinit { transfer.cancel() }
    }
}
