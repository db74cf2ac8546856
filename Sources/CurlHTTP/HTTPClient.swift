import CCurl
import FoundationEssentials

/// HTTP/1.1 and HTTP/2 over libcurl, with streamed bodies, for every call the bot makes.
///
/// One event thread (`EventThread`, see `EventLoop`) serves all transfers of a client; connections
/// (and TLS sessions) are pooled per host with no cap, so keep one client for the whole process.
/// Proxies come from the usual `https_proxy` / `no_proxy` variables, as libcurl reads them.
///
/// Redirects are followed (at most five, http and https only); libcurl never sends a request's
/// `Authorization` header to another host or port than the one it was written for.
public final class HTTPClient: Sendable {
    public struct Configuration: Sendable {
        /// Giving up on a connection (and the TLS handshake) after this long.
        var connectTimeout: Duration
        /// A PEM file of trusted CA certificates instead of the system's bundle (`CURLOPT_CAINFO`).
        public var caBundlePath: String?
        var followsRedirects: Bool

        public init(connectTimeout: Duration = .seconds(15), caBundlePath: String? = nil, followsRedirects: Bool = true) {
            self.connectTimeout = connectTimeout
            self.caBundlePath = caBundlePath
            self.followsRedirects = followsRedirects
        }
    }

    /// Where the transfers run; shared with the process's other clients and tasks when given.
    public let thread: EventThread
    private var loop: EventLoop { thread.loop }
    private let configuration: Configuration

    /// A client on `thread`, or on an event thread of its own.
    public init(_ configuration: Configuration = .init(), on thread: EventThread = EventThread()) {
        self.configuration = configuration
        self.thread = thread
    }

    /// The clock the bot's waits should use (`EventThread.clock`).
    public var clock: EventLoopClock { thread.clock }

    var loopForTests: EventLoop { loop }

    /// The event thread as a task executor (`EventThread.executor`). Jobs go to Swift's global
    /// pool once the thread is gone.
    public var executor: any TaskExecutor { thread.executor }

    /// Transfers the event thread is running now.
    var activeTransfers: Int { loop.activeCount.load(ordering: .relaxed) }

    /// Sends `request` and returns as soon as the final response head is in.
    ///
    /// Throws `HTTPClientError` for transport failures and `CancellationError` when the calling task
    /// is cancelled (which also aborts the transfer).
    public func send(_ request: HTTPRequest) async throws -> HTTPStreamingResponse {
        let transfer = try makeTransfer(request)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (head: CheckedContinuation<HTTPStreamingResponse, any Error>) in
                let cancelled = transfer.state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.head = head
                    return false
                }
                if cancelled {
                    head.resume(throwing: CancellationError())
                } else {
                    loop.post(.add(transfer))
                }
            }
        } onCancel: {
            transfer.cancel()
        }
    }

    /// Sends `request` and reads the whole body, all within `deadline` (libcurl's total timeout).
    /// Throws `HTTPClientError` for transport failures, a passed deadline and bodies over `limit` bytes.
    public func fetch(_ request: HTTPRequest, deadline: Duration, limit: Int = 64 << 20) async throws -> HTTPResponse {
        var request = request
        request.totalTimeout = deadline
        let response = try await send(request)
        let body = try await response.body.collect(upTo: limit)
        return HTTPResponse(status: response.status, headers: response.headers, body: body)
    }

    private func makeTransfer(_ request: HTTPRequest) throws -> Transfer {
        guard let scheme = request.url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw HTTPClientError(.invalidURL)
        }
        guard let easy = curl_easy_init() else { throw HTTPClientError(.other) }
        ccurl_easy_setopt_string(easy, CURLOPT_URL, request.url.absoluteString)
        ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        ccurl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        ccurl_easy_setopt_string(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        if configuration.followsRedirects {
            ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 1)
            ccurl_easy_setopt_long(easy, CURLOPT_MAXREDIRS, 5)
        }
        ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout / .milliseconds(1)))
        if let idle = request.idleTimeout {
            // Less than one byte a second for `idle` seconds ends the transfer.
            ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
            ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Int((idle / .seconds(1)).rounded(.up))))
        }
        if let total = request.totalTimeout {
            ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, max(1, Int(total / .milliseconds(1))))
        }
        ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        ccurl_easy_setopt_long(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1)
        if let path = configuration.caBundlePath { ccurl_easy_setopt_string(easy, CURLOPT_CAINFO, path) }

        switch request.method.uppercased() {
        case "GET": ccurl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1)
        case "POST": ccurl_easy_setopt_long(easy, CURLOPT_POST, 1)
        default: ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method)
        }
        if let body = request.body {
            ccurl_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            // libcurl keeps its own copy, so a redirect can send the body again.
            body.withUnsafeBufferPointer { buffer in
                _ = ccurl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: buffer.baseAddress ?? UnsafePointer(bitPattern: 1)))
            }
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers {
            list = curl_slist_append(list, "\(name): \(value)")
        }
        // No "Expect: 100-continue" round trip before a larger body.
        list = curl_slist_append(list, "Expect:")
        ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list)

        let transfer = Transfer(
            easy: easy, headerList: list, loop: loop, followsRedirects: configuration.followsRedirects,
            deliveryInterval: request.deliveryInterval)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        ccurl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, context)
        ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
        ccurl_easy_setopt_write(easy, CURLOPT_HEADERFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            data.map { transfer.loopHeaderLine(UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: length)) }
            return length
        }
        ccurl_easy_setopt_write(easy, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            guard let data, length > 0 else { return length }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: length)
            return transfer.loopWrite(bytes) ? length : ccurl_writefunc_pause()
        }
        return transfer
    }
}
