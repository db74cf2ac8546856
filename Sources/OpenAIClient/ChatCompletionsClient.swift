import Support
import CurlHTTP
import Foundation

/// One streamed call to `POST {base}/chat/completions` of an OpenAI-compatible server.
///
/// It does not retry: `CompletionRunner` owns retries, fallback and deadlines.
public struct ChatCompletionsClient: Sendable {
    public let baseURL: URL
    let apiKey: Secret
    let extraHeaders: [String: String]
    let http: HTTPClient
    /// libcurl's idle limit, a backstop behind the deadlines `CompletionRunner` enforces.
    private let transportTimeout: Duration
    /// Events come every few milliseconds, but Telegram shows at most a few updates a second: once
    /// the first text is in, the rest of a streamed answer is handed over at most this often (far
    /// below the 250 ms between two drafts, smooth enough for the terminal), which saves a thread
    /// wake-up per event. Before the first text (role chunks, a model that thinks) bytes go at once.
    public static let deliveryInterval: Duration = .milliseconds(50)

    public init(
        baseURL: URL, apiKey: Secret, appURL: String? = nil, appName: String? = nil,
        http: HTTPClient, transportTimeout: Duration = .seconds(600)
    ) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        var headers: [String: String] = [:]
        if let appURL, let appName {
            // OpenRouter's attribution headers.
            headers["HTTP-Referer"] = appURL
            headers["X-Title"] = appName
        }
        self.extraHeaders = headers
        self.http = http
        self.transportTimeout = transportTimeout
    }

    /// Starts the call. Returns once a 200 response has begun; any other status is thrown as the
    /// matching `LLMError`. `activity` is touched on every byte that arrives, for idle deadlines.
    func stream(
        _ request: OpenAI.ChatRequest, activity: ActivityMonitor? = nil, deliveryInterval: Duration = ChatCompletionsClient.deliveryInterval
    ) async throws -> ChatCompletionStream {
        var urlRequest = HTTPRequest(method: "POST", url: baseURL.appending(path: "chat/completions"), idleTimeout: transportTimeout)
        urlRequest.headers = [
            ("Authorization", "Bearer \(apiKey.value)"), ("Content-Type", "application/json"), ("Accept", "text/event-stream"),
        ]
        for (name, value) in extraHeaders { urlRequest.setHeader(name, value) }
        urlRequest.body = Array(try JSONEncoder().encode(request))

        let response: HTTPStreamingResponse
        do {
            response = try await http.send(urlRequest)
        } catch let error as HTTPClientError {
            throw LLMError(transport: error, beforeFirstByte: true)
        }
        // Headers are not the answer: servers that think first send them at once, so the first-byte
        // deadline runs on until the first body byte (the stream touches `activity` for each).
        guard response.status == 200 else {
            var body = Data()
            do {
                for try await chunk in response.body {
                    body.append(contentsOf: chunk)
                    if body.count > 65_536 { break }
                }
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // The status alone still says what went wrong.
            }
            throw LLMError(
                status: response.status, headers: response.headers, body: body, apiKey: apiKey.value,
                sentImages: request.messages.contains { !$0.images.isEmpty })
        }
        return ChatCompletionStream(body: response.body, activity: activity, deliveryInterval: deliveryInterval)
    }
}

extension ChatCompletionsClient {
    /// `GET {base}/models`: the model ids the server lists. Throws `LLMError` for error answers
    /// (`modelNotFound` when the server does not serve the endpoint at all).
    public func listModels() async throws -> [String] {
        var request = HTTPRequest(url: baseURL.appending(path: "models"), headers: [("Authorization", "Bearer \(apiKey.value)")])
        for (name, value) in extraHeaders { request.setHeader(name, value) }
        let response: HTTPResponse
        do {
            response = try await http.fetch(request, deadline: .seconds(25), limit: 8 << 20)
        } catch let error as HTTPClientError {
            throw error.kind == .timedOut ? LLMError.timeout(.total) : LLMError(transport: error, beforeFirstByte: true)
        }
        let body = Data(response.body)
        guard response.status == 200 else {
            throw LLMError(status: response.status, headers: response.headers, body: body, apiKey: apiKey.value)
        }
        struct List: Decodable {
            struct Model: Decodable { var id: String }
            var data: [Model]
        }
        guard let list = try? JSONDecoder().decode(List.self, from: body) else { throw LLMError.malformedEvent }
        return list.data.map(\.id)
    }
}

/// What a streamed answer is made of.
enum ChatCompletionEvent: Sendable, Equatable {
    /// The next piece of the answer's text.
    case delta(String)
    /// Token counts (usually in a final chunk with `choices: []`).
    case usage(OpenAI.Usage)
    /// The model stopped, and why (`stop`, `length`, …).
    case finished(reason: String)
}

/// The events of one streamed answer, decoded as bytes arrive.
///
/// Ends normally only at `data: [DONE]`, or at the end of the body after a finish reason. A body that
/// ends otherwise throws `LLMError.streamEndedUnexpectedly`, or `.emptyStream` if it held no event.
struct ChatCompletionStream: AsyncSequence, Sendable {
    typealias Element = ChatCompletionEvent
    let body: HTTPBody
    let activity: ActivityMonitor?
    var deliveryInterval: Duration = ChatCompletionsClient.deliveryInterval

    func makeAsyncIterator() -> Iterator {
        Iterator(body: body.makeAsyncIterator(), activity: activity, deliveryInterval: deliveryInterval)
    }

    struct Iterator: AsyncIteratorProtocol {
        var body: HTTPBody.Iterator
        let activity: ActivityMonitor?
        let deliveryInterval: Duration
        var decoder = SSEDecoder()
        var pending: [ChatCompletionEvent] = []
        var pendingIndex = 0
        var sawEvent = false
        var sawFinish = false
        var sawText = false
        var ended = false

        init(body: HTTPBody.Iterator, activity: ActivityMonitor?, deliveryInterval: Duration = ChatCompletionsClient.deliveryInterval) {
            self.body = body
            self.activity = activity
            self.deliveryInterval = deliveryInterval
        }

        mutating func next() async throws -> ChatCompletionEvent? {
            while true {
                if pendingIndex < pending.count {
                    defer { pendingIndex += 1 }
                    return pending[pendingIndex]
                }
                pending.removeAll(keepingCapacity: true)
                pendingIndex = 0
                if ended { return nil }

                let chunk: [UInt8]?
                do {
                    chunk = try await body.next()
                } catch let error as HTTPClientError {
                    ended = true
                    throw sawEvent ? LLMError.streamEndedUnexpectedly : LLMError(transport: error, beforeFirstByte: false)
                }
                guard let chunk else {
                    // A cancelled consumer sees the body end early: that is cancellation, not a fault.
                    try Task.checkCancellation()
                    try process(decoder.finish())
                    if !ended {
                        ended = true
                        if !sawFinish { throw sawEvent ? LLMError.streamEndedUnexpectedly : LLMError.emptyStream }
                    }
                    continue
                }
                activity?.touch()
                do {
                    try process(decoder.feed(chunk[...]))
                } catch is SSEDecoder.EventTooLarge {
                    ended = true
                    throw LLMError.malformedEvent  // a server that never ends its line
                }
            }
        }

        private mutating func process(_ payloads: [String]) throws {
            for payload in payloads where !ended {
                sawEvent = true
                if payload == "[DONE]" {
                    ended = true
                    return
                }
                let chunk: OpenAI.ChatChunk
                do {
                    chunk = try OpenAI.ChatChunk(payload)
                } catch {
                    throw LLMError.malformedEvent
                }
                if let error = chunk.error {
                    throw LLMError.streamError(message: error.message ?? "unknown error")
                }
                for choice in chunk.choices ?? [] {
                    if let text = choice.content, !text.isEmpty {
                        if !sawText {
                            sawText = true
                            body.deliver(every: deliveryInterval)
                        }
                        // One piece per batch: what arrived in one hand-over goes on as one
                        // delta, so the text is appended and shown once, not once per event.
                        if case .delta(let earlier)? = pending.last {
                            pending[pending.count - 1] = .delta(earlier + text)
                        } else {
                            pending.append(.delta(text))
                        }
                    }
                    if let reason = choice.finishReason {
                        sawFinish = true
                        pending.append(.finished(reason: reason))
                    }
                }
                if let usage = chunk.usage { pending.append(.usage(usage)) }
            }
        }
    }
}

extension LLMError {
    /// Classifies a non-200 answer. OpenAI's bodies are `{"error":{"code":…,"type":…}}`; other
    /// servers vary, so the status decides when the body says nothing recognisable.
    /// `sentImages`: the request had images, so a rejection that speaks of them means the model
    /// cannot see them (llama.cpp says so with a 500, OpenAI with a 400, OpenRouter with a 404).
    init(status: Int, headers: [String: String], body: Data, apiKey: String, sentImages: Bool = false) {
        let parsed = try? JSONDecoder().decode(OpenAI.ErrorBody.self, from: body)
        let code = parsed?.error?.code ?? ""
        let type = parsed?.error?.type ?? ""
        let text = Self.redacted(parsed?.text ?? String(decoding: body.prefix(500), as: UTF8.self), apiKey: apiKey)
        let lowered = text.lowercased()
        if sentImages, [400, 404, 415, 422, 500].contains(status), Self.rejectsImages(lowered) {
            self = .imagesUnsupported
            return
        }
        switch status {
        case 429:
            if code == "insufficient_quota" || type == "insufficient_quota" || lowered.contains("quota") {
                self = .quotaExceeded
            } else {
                self = .rateLimited(retryAfter: Self.retryAfter(headers))
            }
        case 400, 413, 422:
            if code == "context_length_exceeded" || lowered.contains("context length")
                || lowered.contains("maximum context") || lowered.contains("context_length")
                || lowered.contains("too many tokens")
            {
                self = .contextLengthExceeded
            } else if parsed?.error?.param == "max_tokens" || lowered.contains("max_completion_tokens") {
                self = .maxTokensUnsupported
            } else {
                self = .badRequest(message: text)
            }
        case 401, 403:
            self = .unauthorized(status: status, message: text)
        case 402:
            self = .quotaExceeded
        case 404:
            self = .modelNotFound(message: text)
        case 500...599:
            self = .server(status: status)
        default:
            self = .unexpectedStatus(status)
        }
    }

    /// How servers say a model cannot take images: "image_url is only supported by certain models"
    /// (OpenAI), "image input is not supported" (llama.cpp without mmproj), "is not a multimodal
    /// model" (vLLM), "no endpoints found that support image input" (OpenRouter), "content must be a
    /// string" (Groq's text models).
    static func rejectsImages(_ lowered: String) -> Bool {
        if lowered.contains("multimodal") || lowered.contains("content must be a string") || lowered.contains("mmproj") { return true }
        guard lowered.contains("image") else { return false }
        return ["not support", "unsupported", "only supported", "does not support", "doesn't support", "cannot", "can't", "invalid content type",
            "support image", "vision"].contains { lowered.contains($0) }
    }

    /// Maps a transport failure. A timeout before the first byte is a first-byte timeout.
    init(transport error: HTTPClientError, beforeFirstByte: Bool) {
        switch error.kind {
        case .timedOut:
            self = .timeout(beforeFirstByte ? .firstByte : .idle)
        default:
            self = .connection(error.description)
        }
    }

    /// `Retry-After` as seconds (the HTTP-date form is rare from these APIs and treated as absent).
    /// Any number is possible (`inf`, `1e300`): it is clamped to a day before it becomes a duration,
    /// and the retry policy then declines to wait that long.
    static func retryAfter(_ headers: [String: String]) -> Duration? {
        guard let value = headers["retry-after"]?.trimmingCharacters(in: .whitespaces),
            let seconds = Double(value), !seconds.isNaN, seconds >= 0
        else { return nil }
        return .milliseconds(Int64(min(seconds, 86_400) * 1000))
    }

    /// Servers sometimes quote a prefix of the key back ("Incorrect API key provided: sk-…").
    static func redacted(_ text: String, apiKey: String) -> String {
        guard !apiKey.isEmpty else { return text }
        return text.replacingOccurrences(of: apiKey, with: "[REDACTED]")
    }
}
