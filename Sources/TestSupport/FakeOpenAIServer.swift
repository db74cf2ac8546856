import Foundation
import Synchronization

/// A fake OpenAI-compatible chat-completions server on 127.0.0.1, as strict as the real ones:
/// it checks the key, the path, the JSON body, the model name, the context window and (optionally)
/// the `max_tokens` parameter before it answers, and it streams answers as real SSE with chunk
/// boundaries anywhere. Tests queue `Behavior`s to script faults; with none queued it echoes.
public final class FakeOpenAIServer: Sendable {
    /// How the next request is answered (after the request has passed validation).
    public enum Behavior: Sendable {
        /// Streams `text`, cut into transport chunks of `chunkSize` bytes (boundaries fall anywhere,
        /// inside UTF-8 sequences too), with `pause` between chunks.
        case answer(String, chunkSize: Int = 7, pause: Duration? = nil, usage: Bool = true)
        /// Streams `text` as a real provider paces it: one event of `charactersPerEvent` characters
        /// per network write, `every` apart.
        case paced(String, charactersPerEvent: Int, every: Duration)
        /// 429 `rate_limit_exceeded`, with a `Retry-After` header when given.
        case rateLimited(retryAfterSeconds: Int?)
        /// 429 `insufficient_quota`.
        case quotaExceeded
        /// A 5xx.
        case serverError(status: Int)
        /// Streams `text` then cuts the connection without `[DONE]` or a finish reason.
        case droppedStream(after: String)
        /// Streams `text` then goes silent until the client gives up.
        case stall(after: String)
        /// Goes silent before sending any byte.
        case stallBeforeHeaders
        /// HTTP 200 with an empty body (llama.cpp on context overflow).
        case emptyStream
        /// Streams `text`, then a `data:` line that is not JSON.
        case garbageLine(after: String)
        /// Streams `text`, then an `{"error": …}` event.
        case inStreamError(after: String, message: String)
        /// 400 `context_length_exceeded`, whatever the request's size.
        case contextLengthExceeded
        /// 401 in OpenAI's shape.
        case unauthorized
        /// 401 as `{"detail": …}` (FastAPI-style servers).
        case unauthorizedDetail
        /// Raw SSE body text, sent in chunks of `chunkSize` bytes, then a clean end.
        case rawSSE(String, chunkSize: Int)
        /// Sends the status line and headers at once, then says nothing for `pause` before it
        /// streams `text`: llama.cpp and reasoning models that think before their first token.
        case thinkThenAnswer(String, pause: Duration)
        /// 429 `rate_limit_exceeded` with this exact `Retry-After` header value (`inf`, `1e300`, …).
        case rateLimitedHeader(String)
    }

    /// A chat-completions request as received, decoded for assertions.
    public struct ChatRequest: Decodable, Sendable {
        public struct Message: Decodable, Sendable, Equatable {
            public var role: String
            public var content: String
        }
        public struct StreamOptions: Decodable, Sendable { public var include_usage: Bool? }
        public var model: String
        public var messages: [Message]
        public var stream: Bool?
        public var stream_options: StreamOptions?
        public var temperature: Double?
        public var max_tokens: Int?
        public var max_completion_tokens: Int?
    }

    public struct Settings: Sendable {
        public var apiKey: String
        /// Models the server serves; empty serves any name.
        public var models: Set<String>
        /// Tokens (estimated as the server does) that a request plus its output may use.
        public var contextWindow: Int
        /// Answers 400 to `max_tokens`, as OpenAI's reasoning models do.
        public var rejectsMaxTokens: Bool
        /// Whether a final usage chunk is sent when asked for (llama.cpp's Python server never does).
        public var sendsUsage: Bool
        /// Whether `GET /models` exists (some compatible servers do not have it).
        public var servesModelList = true

        public init(apiKey: String = "test-key", models: Set<String> = [], contextWindow: Int = 1_000_000, rejectsMaxTokens: Bool = false, sendsUsage: Bool = true) {
            self.apiKey = apiKey
            self.models = models
            self.contextWindow = contextWindow
            self.rejectsMaxTokens = rejectsMaxTokens
            self.sendsUsage = sendsUsage
        }
    }

    private struct State {
        var queue: [Behavior] = []
        var requests: [ReceivedRequest] = []
    }

    public let settings: Settings
    private let state = Mutex(State())
    private let server = Mutex<FakeHTTPServer?>(nil)

    public init(_ settings: Settings = Settings()) throws {
        self.settings = settings
        let http = try FakeHTTPServer { [weak self] request in
            self?.respond(to: request) ?? .json(503, "{}")
        }
        server.withLock { $0 = http }
    }

    deinit { server.withLock { $0?.shutdown() } }

    /// The base URL to configure, e.g. `http://127.0.0.1:PORT/v1`.
    public var baseURL: URL { URL(string: "http://127.0.0.1:\(port)/v1")! }
    public var port: Int { server.withLock { $0!.port } }

    /// Queues behaviours for the next requests, in order.
    public func enqueue(_ behaviors: Behavior...) {
        state.withLock { $0.queue.append(contentsOf: behaviors) }
    }

    /// Forgets the requests recorded so far, so a long soak run keeps the fake's memory flat.
    public func forgetRequests() {
        state.withLock { $0.requests.removeAll() }
    }

    /// Behaviours queued and not yet used.
    public var queuedBehaviors: Int { state.withLock { $0.queue.count } }

    /// Every request received, in order.
    public var requests: [ReceivedRequest] { state.withLock { $0.requests } }

    /// The chat-completions requests received, decoded.
    public var chatRequests: [ChatRequest] {
        requests.compactMap { try? JSONDecoder().decode(ChatRequest.self, from: $0.body) }
    }

    /// How often a client hung up while the server was still sending or stalling.
    public var clientDisconnects: Int { server.withLock { $0!.clientDisconnects } }

    /// The server's token estimate: about four characters a token, plus framing per message.
    public static func tokens(_ messages: [ChatRequest.Message]) -> Int {
        messages.reduce(0) { $0 + $1.content.count / 4 + 4 }
    }

    private func respond(to request: ReceivedRequest) -> ScriptedResponse {
        state.withLock { $0.requests.append(request) }
        guard request.method == "POST", request.path == "/v1/chat/completions" else {
            if request.method == "GET", request.path == "/v1/models", settings.servesModelList { return modelsList(request) }
            return Self.error(404, "Invalid URL (\(request.method) \(request.path))", type: "invalid_request_error", code: nil)
        }
        guard request.headers["authorization"] == "Bearer \(settings.apiKey)" else {
            return Self.error(401, "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key")
        }
        guard request.headers["content-type"]?.hasPrefix("application/json") == true,
            let body = try? JSONDecoder().decode(ChatRequest.self, from: request.body)
        else {
            return Self.error(400, "We could not parse the JSON body of your request.", type: "invalid_request_error", code: nil)
        }
        if !settings.models.isEmpty, !settings.models.contains(body.model) {
            return Self.error(404, "The model `\(body.model)` does not exist or you do not have access to it.", type: "invalid_request_error", code: "model_not_found")
        }
        guard !body.messages.isEmpty,
            body.messages.allSatisfy({ ["system", "user", "assistant"].contains($0.role) })
        else {
            return Self.error(400, "Invalid 'messages': expected a non-empty array of messages with valid roles.", type: "invalid_request_error", code: nil)
        }
        if settings.rejectsMaxTokens, body.max_tokens != nil {
            return Self.error(
                400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                type: "invalid_request_error", code: "unsupported_parameter", param: "max_tokens")
        }
        guard body.stream == true else {
            return Self.error(400, "This fake only serves streamed completions.", type: "invalid_request_error", code: nil)
        }
        let output = body.max_completion_tokens ?? body.max_tokens ?? 0
        let requested = Self.tokens(body.messages) + output
        if requested > settings.contextWindow {
            return Self.error(
                400, "This model's maximum context length is \(settings.contextWindow) tokens. However, you requested \(requested) tokens.",
                type: "invalid_request_error", code: "context_length_exceeded", param: "messages")
        }

        let behavior = state.withLock { $0.queue.isEmpty ? nil : $0.queue.removeFirst() }
        let usageWanted = body.stream_options?.include_usage == true && settings.sendsUsage
        switch behavior ?? .answer("Echo: \(body.messages.last!.content)") {
        case .answer(let text, let chunkSize, let pause, let usage):
            let sse = Self.sse(text: text, model: body.model, finish: "stop", usage: usage && usageWanted ? (Self.tokens(body.messages), Self.pieces(text).count) : nil)
            return Self.stream(sse, chunkSize: chunkSize, pause: pause)
        case .paced(let text, let size, let pause):
            var pieces: [String] = []
            var rest = Substring(text)
            while !rest.isEmpty {
                pieces.append(String(rest.prefix(size)))
                rest = rest.dropFirst(size)
            }
            var steps: [ScriptedResponse.Step] = []
            for (index, piece) in pieces.enumerated() {
                let usage = index == pieces.count - 1 ? (Self.tokens(body.messages), pieces.count) : nil
                let finish = index == pieces.count - 1 ? "stop" : nil
                var event = Self.sse(pieces: [piece], model: body.model, finish: finish, usage: usage, done: finish != nil)
                if index > 0 {
                    // Only the first event carries the role chunk.
                    event = String(event[event.range(of: "\n\n")!.upperBound...])
                    steps.append(.pause(pause))
                }
                steps.append(.bytes(Data(event.utf8)))
            }
            return ScriptedResponse(status: 200, headers: ["Content-Type": "text/event-stream"], steps: steps)
        case .rateLimited(let seconds):
            var headers: [String: String] = [:]
            if let seconds { headers["Retry-After"] = String(seconds) }
            var response = Self.error(429, "Rate limit reached for requests.", type: "requests", code: "rate_limit_exceeded")
            response.headers.merge(headers) { $1 }
            return response
        case .quotaExceeded:
            return Self.error(429, "You exceeded your current quota, please check your plan and billing details.", type: "insufficient_quota", code: "insufficient_quota")
        case .serverError(let status):
            return Self.error(status, "The server had an error while processing your request.", type: "server_error", code: nil)
        case .droppedStream(let text):
            var response = Self.stream(Self.sse(text: text, model: body.model, finish: nil, usage: nil, done: false), chunkSize: 16, pause: nil)
            response.ending = .abort
            return response
        case .stall(let text):
            var response = Self.stream(Self.sse(text: text, model: body.model, finish: nil, usage: nil, done: false), chunkSize: 1 << 20, pause: nil)
            response.steps.append(.waitForClientClose)
            return response
        case .stallBeforeHeaders:
            return ScriptedResponse(status: 200, beforeHead: [.waitForClientClose])
        case .emptyStream:
            return ScriptedResponse(status: 200, headers: ["Content-Type": "text/event-stream"])
        case .garbageLine(let text):
            let sse = Self.sse(text: text, model: body.model, finish: nil, usage: nil, done: false) + "data: {this is not json\n\n"
            return Self.stream(sse, chunkSize: 1 << 20, pause: nil)
        case .inStreamError(let text, let message):
            let sse = Self.sse(text: text, model: body.model, finish: nil, usage: nil, done: false)
                + "data: {\"error\":{\"message\":\"\(message)\",\"type\":\"server_error\"}}\n\n"
            return Self.stream(sse, chunkSize: 1 << 20, pause: nil)
        case .contextLengthExceeded:
            return Self.error(
                400, "This model's maximum context length is 8192 tokens.", type: "invalid_request_error", code: "context_length_exceeded",
                param: "messages")
        case .unauthorized:
            return Self.error(401, "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key")
        case .unauthorizedDetail:
            return .json(401, #"{"detail":"Invalid authentication credentials"}"#)
        case .rawSSE(let text, let chunkSize):
            return Self.stream(text, chunkSize: chunkSize, pause: nil)
        case .thinkThenAnswer(let text, let pause):
            let sse = Self.sse(text: text, model: body.model, finish: "stop", usage: usageWanted ? (Self.tokens(body.messages), Self.pieces(text).count) : nil)
            var response = Self.stream(sse, chunkSize: 1 << 20, pause: nil)
            response.steps.insert(.pause(pause), at: 0)
            return response
        case .rateLimitedHeader(let value):
            var response = Self.error(429, "Rate limit reached for requests.", type: "requests", code: "rate_limit_exceeded")
            response.headers["Retry-After"] = value
            return response
        }
    }

    private func modelsList(_ request: ReceivedRequest) -> ScriptedResponse {
        guard request.headers["authorization"] == "Bearer \(settings.apiKey)" else {
            return Self.error(401, "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key")
        }
        let data = settings.models.sorted().map { "{\"id\":\"\($0)\",\"object\":\"model\"}" }.joined(separator: ",")
        return .json(200, "{\"object\":\"list\",\"data\":[\(data)]}")
    }

    /// The pieces an answer is streamed in: words with their following space.
    static func pieces(_ text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if character == " " || character == "\n" {
                pieces.append(current)
                current = ""
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    /// An answer as OpenAI streams it: a role chunk, content chunks, a finish chunk, a usage chunk
    /// with `choices: []`, then `[DONE]`.
    public static func sse(text: String, model: String, finish: String?, usage: (Int, Int)?, done: Bool = true) -> String {
        sse(pieces: pieces(text), model: model, finish: finish, usage: usage, done: done)
    }

    static func sse(pieces: [String], model: String, finish: String?, usage: (Int, Int)?, done: Bool = true) -> String {
        func event(_ json: String) -> String { "data: \(json)\n\n" }
        func chunk(_ choices: String) -> String {
            event("{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\(quoted(model)),\"choices\":\(choices)}")
        }
        var sse = chunk("[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]")
        for piece in pieces {
            sse += chunk("[{\"index\":0,\"delta\":{\"content\":\(quoted(piece))},\"finish_reason\":null}]")
        }
        if let finish { sse += chunk("[{\"index\":0,\"delta\":{},\"finish_reason\":\"\(finish)\"}]") }
        if let (prompt, completion) = usage {
            sse += event(
                "{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\(quoted(model)),\"choices\":[],\"usage\":{\"prompt_tokens\":\(prompt),\"completion_tokens\":\(completion),\"total_tokens\":\(prompt + completion)}}")
        }
        if done { sse += "data: [DONE]\n\n" }
        return sse
    }

    /// `text` as a JSON string literal.
    static func quoted(_ text: String) -> String {
        var json = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": json += "\\\""
            case "\\": json += "\\\\"
            case "\n": json += "\\n"
            case "\r": json += "\\r"
            case "\t": json += "\\t"
            case _ where scalar.value < 0x20: json += String(format: "\\u%04x", scalar.value)
            default: json.unicodeScalars.append(scalar)
            }
        }
        return json + "\""
    }

    static func stream(_ sse: String, chunkSize: Int, pause: Duration?) -> ScriptedResponse {
        let bytes = Array(sse.utf8)
        var steps: [ScriptedResponse.Step] = []
        var start = 0
        while start < bytes.count {
            let end = min(start + max(1, chunkSize), bytes.count)
            if let pause, start > 0 { steps.append(.pause(pause)) }
            steps.append(.bytes(Data(bytes[start..<end])))
            start = end
        }
        return ScriptedResponse(status: 200, headers: ["Content-Type": "text/event-stream", "Cache-Control": "no-cache"], steps: steps)
    }

    static func error(_ status: Int, _ message: String, type: String, code: String?, param: String? = nil) -> ScriptedResponse {
        let codeJSON = code.map(quoted) ?? "null"
        let paramJSON = param.map(quoted) ?? "null"
        return .json(status, "{\"error\":{\"message\":\(quoted(message)),\"type\":\(quoted(type)),\"param\":\(paramJSON),\"code\":\(codeJSON)}}")
    }
}
