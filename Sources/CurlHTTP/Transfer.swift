import CCurl
import Synchronization

/// One request on the event thread, and the hand-over of its answer to the task that reads it.
///
/// The easy handle, header parsing and everything named `loop…` belong to the event thread alone.
/// What the reader sees (the head continuation, buffered bytes, the end) lives in `state`, under a
/// lock that is never held while libcurl or a continuation runs.
final class Transfer: @unchecked Sendable {
    let easy: UnsafeMutableRawPointer
    private let headerList: UnsafeMutablePointer<curl_slist>?
    let loop: EventLoop
    /// Bytes the reader has not taken yet, beyond which libcurl is told to pause the transfer.
    static let highWater = 1 << 20

    struct State {
        var head: CheckedContinuation<HTTPStreamingResponse, any Error>?
        var buffer: [UInt8] = []
        var reader: CheckedContinuation<[UInt8]?, any Error>?
        /// Set once: `nil` error for a body that ended cleanly.
        var ended: Bool = false
        var failure: (any Error)?
        /// libcurl holds the transfer until the reader catches up.
        var paused = false
        /// See `HTTPRequest.deliveryInterval`; the reader may change it at any time.
        var deliveryInterval: Duration?
    }
    let state = Mutex(State())

    // Event-thread state.
    private var loopStatus = 0
    private var loopHeaders: [String: String] = [:]
    private var loopHeadDone = false
    var loopActive = false
    /// Paused by us until the delivery interval is over.
    private var loopResting = false
    let followsRedirects: Bool

    init(
        easy: UnsafeMutableRawPointer, headerList: UnsafeMutablePointer<curl_slist>?, loop: EventLoop, followsRedirects: Bool,
        deliveryInterval: Duration?
    ) {
        state.withLock { $0.deliveryInterval = deliveryInterval }
        self.easy = easy
        self.headerList = headerList
        self.loop = loop
        self.followsRedirects = followsRedirects
    }

    deinit {
        curl_easy_cleanup(easy)
        curl_slist_free_all(headerList)
    }

    // MARK: Reader side (any thread)

    /// The next batch of body bytes, `nil` at the end.
    func next() async throws -> [UInt8]? {
        if let step = take(installing: nil) { return try step.get() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (reader: CheckedContinuation<[UInt8]?, any Error>) in
                if let step = take(installing: reader) { reader.resume(with: step) }
            }
        } onCancel: {
            cancel()
        }
    }

    /// What the reader gets now, or `nil` after installing `reader` (when given) to wait.
    private func take(installing reader: CheckedContinuation<[UInt8]?, any Error>?) -> Result<[UInt8]?, any Error>? {
        let (step, unpause) = state.withLock { state -> (Result<[UInt8]?, any Error>?, Bool) in
            if !state.buffer.isEmpty {
                let bytes = state.buffer
                state.buffer = []
                let unpause = state.paused
                state.paused = false
                return (.success(bytes), unpause)
            }
            if state.ended { return (state.failure.map { .failure($0) } ?? .success(nil), false) }
            if reader != nil, Task.isCancelled {
                return (.failure(CancellationError()), false)
            }
            state.reader = reader
            return (nil, false)
        }
        if unpause { loop.post(.unpause(self)) }
        if case .failure(let error) = step, error is CancellationError { cancel() }
        return step
    }

    /// Sets the delivery interval from the next hand-over on.
    func deliver(every interval: Duration?) {
        state.withLock { $0.deliveryInterval = interval }
    }

    /// Ends the transfer from our side: whoever waits gets `CancellationError`, and the event thread
    /// drops the handle. Does nothing once the transfer has ended.
    func cancel() {
        let waiting = state.withLock { state -> (CheckedContinuation<HTTPStreamingResponse, any Error>?, CheckedContinuation<[UInt8]?, any Error>?)? in
            guard !state.ended else { return nil }
            state.ended = true
            state.failure = CancellationError()
            state.buffer = []
            defer { state.head = nil; state.reader = nil }
            return (state.head, state.reader)
        }
        guard let waiting else { return }
        waiting.0?.resume(throwing: CancellationError())
        waiting.1?.resume(throwing: CancellationError())
        loop.post(.remove(self))
    }

    // MARK: Event thread

    /// libcurl's header callback: one line at a time, the blank line ends a head. Read as bytes:
    /// about eight lines an answer, and `String`'s Unicode-aware lower-casing cost more than the rest.
    func loopHeaderLine(_ line: UnsafeBufferPointer<UInt8>) {
        var end = line.count
        while end > 0, line[end - 1] == 10 || line[end - 1] == 13 { end -= 1 }
        let bytes = UnsafeBufferPointer(rebasing: line[0..<end])
        if bytes.starts(with: "HTTP/".utf8) {
            // A new head (after a 1xx or a redirect): start over.
            loopStatus = Self.status(bytes)
            loopHeaders = [:]
            return
        }
        if !bytes.isEmpty {
            guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return }
            let name = String(decoding: bytes[..<colon].lazy.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
            var start = colon + 1
            while start < bytes.count, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
            loopHeaders[name] = String(decoding: bytes[start...], as: UTF8.self)
            return
        }
        // The blank line: this head is final unless libcurl goes on to another one.
        if (100..<200).contains(loopStatus) { return }
        if followsRedirects, [301, 302, 303, 307, 308].contains(loopStatus), loopHeaders["location"] != nil { return }
        loopDeliverHead()
    }

    /// The status code of a status line ("HTTP/1.1 200 OK", "HTTP/2 429"); 0 when there is none.
    static func status(_ line: UnsafeBufferPointer<UInt8>) -> Int {
        guard let space = line.firstIndex(of: 0x20) else { return 0 }
        var status = 0
        var digits = 0
        for byte in line[(space + 1)...] {
            guard byte >= 0x30, byte <= 0x39 else { break }
            status = status * 10 + Int(byte - 0x30)
            digits += 1
            if digits > 3 { return 0 }
        }
        return digits == 3 ? status : 0
    }

    private func loopDeliverHead() {
        guard !loopHeadDone else { return }
        loopHeadDone = true
        let head = state.withLock { state in
            defer { state.head = nil }
            return state.head
        }
        head?.resume(returning: HTTPStreamingResponse(status: loopStatus, headers: loopHeaders, body: HTTPBody(owner: .init(self))))
    }

    /// libcurl's write callback. Returns false when the transfer must pause (the reader is behind).
    func loopWrite(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        if !loopHeadDone { loopDeliverHead() }
        let accepted = state.withLock { state in
            if state.ended { return true }  // cancelled: drop the bytes, removal is on its way
            if state.buffer.count >= Self.highWater {
                state.paused = true
                return false
            }
            state.buffer.append(contentsOf: bytes)
            return true
        }
        if accepted { loop.touch(self) }
        return accepted
    }

    /// Hands what arrived during this wake-up to a waiting reader: one resume per wake-up. With a
    /// delivery interval, the transfer then rests until the interval is over.
    func loopFlush() {
        let handOver = state.withLock { state -> (CheckedContinuation<[UInt8]?, any Error>, [UInt8], Bool, Duration?)? in
            guard let reader = state.reader, !state.buffer.isEmpty else { return nil }
            state.reader = nil
            let bytes = state.buffer
            state.buffer = []
            defer { state.paused = false }
            return (reader, bytes, state.paused, state.deliveryInterval)
        }
        guard let (reader, bytes, wasBehind, deliveryInterval) = handOver else { return }
        reader.resume(returning: bytes)
        if let deliveryInterval, !loopResting, loopActive {
            loopResting = true
            curl_easy_pause(easy, ccurl_pause_recv())
            loop.wake(self, after: deliveryInterval)
        } else if wasBehind {
            loopUnpause()
        }
    }

    /// The delivery interval is over: read again.
    func loopEndRest() {
        loopResting = false
        loopUnpause()
    }

    /// Lets libcurl go on, unless the transfer is resting or its reader is still behind; libcurl
    /// may deliver what it held back right away.
    func loopUnpause() {
        guard loopActive, !loopResting, !state.withLock({ $0.paused }) else { return }
        curl_easy_pause(easy, ccurl_pause_cont())
        loop.touch(self)
    }

    /// The transfer is over: `error` is nil for a complete body.
    func loopFinish(_ error: (any Error)?) {
        if error == nil, !loopHeadDone { loopDeliverHead() }
        let waiting = state.withLock { state -> (CheckedContinuation<HTTPStreamingResponse, any Error>?, CheckedContinuation<[UInt8]?, any Error>?, [UInt8]) in
            guard !state.ended else { return (nil, nil, []) }
            state.ended = true
            state.failure = error
            let bytes = state.reader == nil ? [] : state.buffer
            if state.reader != nil { state.buffer = [] }
            defer { state.head = nil; state.reader = nil }
            return (state.head, state.reader, bytes)
        }
        waiting.0?.resume(throwing: error ?? HTTPClientError(.connectionLost))
        if let reader = waiting.1 {
            if !waiting.2.isEmpty {
                // The reader takes these bytes now and sees the end on its next call.
                reader.resume(returning: waiting.2)
            } else if let error {
                reader.resume(throwing: error)
            } else {
                reader.resume(returning: nil)
            }
        }
    }
}
