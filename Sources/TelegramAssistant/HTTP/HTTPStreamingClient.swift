import Foundation
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The status line and headers of a response whose body is still arriving.
public struct HTTPStreamingResponse: Sendable {
    public let status: Int
    /// Header names are lower-cased.
    public let headers: [String: String]
    /// The body as it arrives, one network read at a time. Dropping the iterator (or cancelling the
    /// task that reads it) aborts the transfer.
    public let body: AsyncThrowingStream<Data, any Error>
}

/// HTTP with a streamed body over libcurl, through FoundationNetworking's `URLSession`.
///
/// `URLSession.bytes(for:)` does not exist on Linux, so a data delegate bridges each task's callbacks
/// into an `AsyncThrowingStream`. One session is shared so connections (and TLS) are reused.
/// `URLRequest.timeoutInterval` acts as libcurl's idle timeout; deadlines are enforced by callers.
public final class HTTPStreamingClient: Sendable {
    private let session: URLSession
    private let delegate: Delegate

    public init() {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpCookieStorage = nil
        configuration.urlCache = nil
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        // The default (6 per host) silently queues every stream past the sixth: with one model
        // provider and one Bot API host, that would cap the whole bot at six replies at once.
        configuration.httpMaximumConnectionsPerHost = 1024
        delegate = Delegate()
        session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
    }

    deinit {
        session.invalidateAndCancel()
    }

    /// Sends `request` and returns as soon as the response headers are in.
    ///
    /// Throws `URLError` for transport failures and `CancellationError` when the calling task is
    /// cancelled (which also aborts the transfer).
    public func send(_ request: URLRequest) async throws -> HTTPStreamingResponse {
        let (body, bodyContinuation) = AsyncThrowingStream<Data, any Error>.makeStream()
        let task = session.dataTask(with: request)
        let taskBox = TaskBox(task)
        let delegate = self.delegate
        let id = task.taskIdentifier
        // Cancelling (or dropping the body) ends the waiting here at once, without relying on the
        // HTTP stack to report the cancelled transfer: a transfer it loses must not hang its caller.
        bodyContinuation.onTermination = { _ in
            delegate.abandon(id)
            taskBox.task.cancel()
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (head: CheckedContinuation<HTTPStreamingResponse, any Error>) in
                if delegate.register(id, Handler(head: head, body: body, bodyContinuation: bodyContinuation)) {
                    task.resume()
                }
            }
        } onCancel: {
            delegate.abandon(id)
            taskBox.task.cancel()
        }
    }

    /// A whole (non-streamed) response: status, lower-cased headers and body.
    struct Response: Sendable {
        public let status: Int
        public let headers: [String: String]
        public let body: Data
    }

    /// Sends `request` and reads the whole body, all within `deadline` (throws `DeadlineExceeded`
    /// when it passes, `URLError` for transport failures).
    func fetch(_ request: URLRequest, deadline: Duration) async throws -> Response {
        try await withDeadline(deadline) { [self] in
            let response = try await send(request)
            var body = Data()
            for try await chunk in response.body { body.append(chunk) }
            return Response(status: response.status, headers: response.headers, body: body)
        }
    }

    /// `URLSessionTask` is thread-safe but not marked `Sendable` on every platform.
    private struct TaskBox: @unchecked Sendable {
        let task: URLSessionDataTask
        init(_ task: URLSessionDataTask) { self.task = task }
    }

    private struct Handler: Sendable {
        var head: CheckedContinuation<HTTPStreamingResponse, any Error>?
        /// Held only until the response is handed out: from then on the reader owns the stream, and
        /// a reader that drops it ends the transfer (its `onTermination` cancels the task).
        var body: AsyncThrowingStream<Data, any Error>?
        let bodyContinuation: AsyncThrowingStream<Data, any Error>.Continuation
    }

    private final class Delegate: NSObject, URLSessionDataDelegate, Sendable {
        private let handlers = Mutex<[Int: Handler]>([:])

        /// Registers a transfer. Returns false (and ends it) when the calling task is already
        /// cancelled: its cancellation handler may have run before there was anything to cancel.
        func register(_ id: Int, _ handler: Handler) -> Bool {
            let cancelled = handlers.withLock { table -> Bool in
                if Task.isCancelled { return true }
                table[id] = handler
                return false
            }
            if cancelled {
                handler.head?.resume(throwing: CancellationError())
                handler.bodyContinuation.finish(throwing: CancellationError())
            }
            return !cancelled
        }

        /// Ends a transfer from our side: whoever waits for its head or body gets `CancellationError`.
        func abandon(_ id: Int) {
            guard let handler = handlers.withLock({ $0.removeValue(forKey: id) }) else { return }
            handler.head?.resume(throwing: CancellationError())
            handler.bodyContinuation.finish(throwing: CancellationError())
        }

        func urlSession(
            _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
            completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
        ) {
            let id = dataTask.taskIdentifier
            let http = response as? HTTPURLResponse
            var headers: [String: String] = [:]
            for (name, value) in http?.allHeaderFields ?? [:] {
                if let name = name as? String, let value = value as? String {
                    headers[name.lowercased()] = value
                }
            }
            let pending = handlers.withLock { table -> (CheckedContinuation<HTTPStreamingResponse, any Error>, AsyncThrowingStream<Data, any Error>)? in
                guard let handler = table[id], let head = handler.head, let body = handler.body else { return nil }
                table[id]?.head = nil
                table[id]?.body = nil
                return (head, body)
            }
            completionHandler(.allow)
            if let (head, body) = pending {
                head.resume(returning: HTTPStreamingResponse(status: http?.statusCode ?? 0, headers: headers, body: body))
            }
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            let continuation = handlers.withLock { $0[dataTask.taskIdentifier]?.bodyContinuation }
            continuation?.yield(data)
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
            guard let handler = handlers.withLock({ $0.removeValue(forKey: task.taskIdentifier) }) else { return }
            let failure: (any Error)? = error.map { error in
                if let urlError = error as? URLError, urlError.code == .cancelled { return CancellationError() }
                return error
            }
            if let head = handler.head {
                head.resume(throwing: failure ?? URLError(.badServerResponse))
            }
            handler.bodyContinuation.finish(throwing: failure)
        }
    }
}
