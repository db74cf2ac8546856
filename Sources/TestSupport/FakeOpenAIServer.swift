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
        /// A message; content parts are read into the text and the images' data URLs.
        public struct Message: Decodable, Sendable, Equatable {
            public var role: String
            /// The string content, or the text parts joined by newlines.
            public var content: String
            /// The `image_url` parts' URLs, in order.
            public var images: [String] = []
            /// Part types this fake does not know (a real server rejects them).
            var unknownParts: [String] = []

            struct Part: Decodable {
                struct ImageURL: Decodable { var url: String }
                var type: String
                var text: String?
                var image_url: ImageURL?
            }

            enum CodingKeys: String, CodingKey { case role, content }

            public init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                role = try container.decode(String.self, forKey: .role)
                if let text = try? container.decode(String.self, forKey: .content) {
                    content = text
                    return
                }
                let parts = try container.decode([Part].self, forKey: .content)
                var texts: [String] = []
                for part in parts {
                    switch part.type {
                    case "text": texts.append(part.text ?? "")
                    case "image_url": images.append(part.image_url?.url ?? "")
                    default: unknownParts.append(part.type)
                    }
                }
                content = texts.joined(separator: "\n")
            }
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
        /// How a text-only model answers a request with images; nil sees images.
        public var rejectsImages: ImageRejection?
        /// Transcription models served at `/audio/transcriptions`; empty serves any name.
        public var transcriptionModels: Set<String> = []

        public init(apiKey: String = "test-key", models: Set<String> = [], contextWindow: Int = 1_000_000, rejectsMaxTokens: Bool = false, sendsUsage: Bool = true) {
            self.apiKey = apiKey
            self.models = models
            self.contextWindow = contextWindow
            self.rejectsMaxTokens = rejectsMaxTokens
            self.sendsUsage = sendsUsage
        }
    }

    /// How servers refuse images for a text-only model.
    public enum ImageRejection: Sendable {
        /// OpenAI: 400 "Invalid content type. image_url is only supported by certain models."
        case openAI
        /// llama.cpp without a projector: 500 "image input is not supported - hint: …".
        case llamaCpp
    }

    /// How the next transcription request is answered.
    public enum TranscriptionBehavior: Sendable {
        case text(String)
        case rateLimited(retryAfterSeconds: Int?)
        case quotaExceeded
        case serverError(status: Int)
        case unauthorized
        /// Says nothing until the client gives up.
        case stall
        /// 200 with a body that is not the JSON it should be.
        case malformed
    }

    /// A transcription request as received, with its multipart fields.
    public struct TranscriptionRequest: Sendable {
        public var model: String
        public var fileName: String
        public var fileType: String
        public var file: [UInt8]
    }

    private struct State {
        var queue: [Behavior] = []
        var transcriptionQueue: [TranscriptionBehavior] = []
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

    /// Queues answers for the next transcription requests, in order.
    public func enqueueTranscription(_ behaviors: TranscriptionBehavior...) {
        state.withLock { $0.transcriptionQueue.append(contentsOf: behaviors) }
    }

    /// The transcription requests that parsed, in order.
    public var transcriptionRequests: [TranscriptionRequest] {
        requests.filter { $0.path == "/v1/audio/transcriptions" }.compactMap { try? Self.parseTranscription($0).get() }
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
        messages.reduce(0) { $0 + $1.content.count / 4 + 4 + $1.images.count * 85 }
    }

    /// Whether a data URL holds an image of the type it declares, as vision servers check.
    static func isImageDataURL(_ url: String) -> Bool {
        let magic: [String: [UInt8]] = [
            "image/jpeg": [0xFF, 0xD8, 0xFF], "image/png": [0x89, 0x50, 0x4E, 0x47], "image/gif": Array("GIF8".utf8), "image/webp": Array("RIFF".utf8),
        ]
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") else { return false }
        let type = String(url[url.index(url.startIndex, offsetBy: 5)..<comma].dropLast(";base64".count))
        guard let expected = magic[type], let data = Data(base64Encoded: String(url[url.index(after: comma)...])) else { return false }
        return data.count > 16 && Array(data.prefix(expected.count)) == expected
    }

    private func respond(to request: ReceivedRequest) -> ScriptedResponse {
        state.withLock { $0.requests.append(request) }
        if request.method == "POST", request.path == "/v1/audio/transcriptions" { return transcribe(request) }
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
        if let unknown = body.messages.flatMap(\.unknownParts).first {
            return Self.error(400, "Invalid value: '\(unknown)'. Supported values are: 'text' and 'image_url'.", type: "invalid_request_error", code: "invalid_value")
        }
        let images = body.messages.flatMap(\.images)
        if !images.isEmpty {
            switch settings.rejectsImages {
            case .openAI?:
                return Self.error(
                    400, "Invalid content type. image_url is only supported by certain models.", type: "invalid_request_error", code: nil,
                    param: "messages.[1].content.[1].type")
            case .llamaCpp?:
                return .json(500, #"{"error":{"code":500,"message":"image input is not supported - hint: if this is unexpected, you may need to provide the mmproj","type":"server_error"}}"#)
            case nil:
                if let bad = images.first(where: { !Self.isImageDataURL($0) }) {
                    return Self.error(
                        400, "Invalid image_url: expected a base64-encoded data URL with an image MIME type (got \(bad.prefix(30))…).",
                        type: "invalid_request_error", code: "invalid_image_url")
                }
            }
            if body.messages.contains(where: { !$0.images.isEmpty && $0.role != "user" }) {
                return Self.error(400, "Image content parts are only allowed in user messages.", type: "invalid_request_error", code: nil)
            }
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

    /// `POST /audio/transcriptions`: checks the key, parses the multipart body (a `file` with a
    /// name and bytes, a `model`), then answers as queued, or with a transcript naming the file.
    private func transcribe(_ request: ReceivedRequest) -> ScriptedResponse {
        guard request.headers["authorization"] == "Bearer \(settings.apiKey)" else {
            return Self.error(401, "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key")
        }
        let parsed: TranscriptionRequest
        switch Self.parseTranscription(request) {
        case .success(let request): parsed = request
        case .failure(let problem): return Self.error(400, problem.message, type: "invalid_request_error", code: nil)
        }
        if !settings.transcriptionModels.isEmpty, !settings.transcriptionModels.contains(parsed.model) {
            return Self.error(404, "The model `\(parsed.model)` does not exist.", type: "invalid_request_error", code: "model_not_found")
        }
        let behavior = state.withLock { $0.transcriptionQueue.isEmpty ? nil : $0.transcriptionQueue.removeFirst() }
        switch behavior ?? .text("Transcript of \(parsed.fileName) (\(parsed.file.count) bytes)") {
        case .text(let text):
            return .json(200, "{\"text\":\(Self.quoted(text))}")
        case .rateLimited(let seconds):
            var response = Self.error(429, "Rate limit reached for requests.", type: "requests", code: "rate_limit_exceeded")
            if let seconds { response.headers["Retry-After"] = String(seconds) }
            return response
        case .quotaExceeded:
            return Self.error(429, "You exceeded your current quota.", type: "insufficient_quota", code: "insufficient_quota")
        case .serverError(let status):
            return Self.error(status, "The server had an error while processing your request.", type: "server_error", code: nil)
        case .unauthorized:
            return Self.error(401, "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key")
        case .stall:
            return ScriptedResponse(status: 200, beforeHead: [.waitForClientClose])
        case .malformed:
            return .json(200, "{\"txt\":")
        }
    }

    struct MultipartProblem: Error { var message: String }

    /// Reads a transcription request's multipart body as OpenAI's parser would.
    static func parseTranscription(_ request: ReceivedRequest) -> Result<TranscriptionRequest, MultipartProblem> {
        guard let type = request.headers["content-type"], type.hasPrefix("multipart/form-data"),
            let range = type.range(of: "boundary=")
        else { return .failure(MultipartProblem(message: "Content-Type must be multipart/form-data with a boundary.")) }
        let boundary = Array(("--" + type[range.upperBound...].trimmingCharacters(in: CharacterSet(charactersIn: "\" "))).utf8)
        let body = Array(request.body)
        var fields: [String: (fileName: String?, type: String?, bytes: [UInt8])] = [:]
        func find(_ needle: [UInt8], from: Int) -> Int? {
            guard needle.count <= body.count else { return nil }
            var index = from
            while index + needle.count <= body.count {
                if body[index] == needle[0], Array(body[index..<(index + needle.count)]) == needle { return index }
                index += 1
            }
            return nil
        }
        guard var start = find(boundary, from: 0) else { return .failure(MultipartProblem(message: "The multipart body has no parts.")) }
        while true {
            let afterBoundary = start + boundary.count
            if afterBoundary + 2 <= body.count, body[afterBoundary] == UInt8(ascii: "-"), body[afterBoundary + 1] == UInt8(ascii: "-") { break }
            guard let headEnd = find(Array("\r\n\r\n".utf8), from: afterBoundary),
                let next = find(Array("\r\n".utf8) + boundary, from: headEnd + 4)
            else { return .failure(MultipartProblem(message: "The multipart body is cut short.")) }
            let head = String(decoding: body[afterBoundary..<headEnd], as: UTF8.self)
            func parameter(_ name: String) -> String? {
                guard let range = head.range(of: "\(name)=\"") else { return nil }
                return String(head[range.upperBound...].prefix { $0 != "\"" })
            }
            let contentType = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-type:") }
                .map { $0.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces) }
            if let name = parameter(" name") ?? parameter(";name") {
                fields[name] = (parameter("filename"), contentType, Array(body[(headEnd + 4)..<next]))
            }
            start = next + 2
        }
        guard let model = fields["model"].map({ String(decoding: $0.bytes, as: UTF8.self) }), !model.isEmpty else {
            return .failure(MultipartProblem(message: "you must provide a model parameter"))
        }
        guard let file = fields["file"], let fileName = file.fileName, !file.bytes.isEmpty else {
            return .failure(MultipartProblem(message: "Could not parse multipart form: a 'file' part with a filename is required."))
        }
        let known = ["flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"]
        guard let ext = fileName.split(separator: ".").last.map({ $0.lowercased() }), known.contains(ext) else {
            return .failure(MultipartProblem(message: "Invalid file format. Supported formats: \(known)"))
        }
        return .success(TranscriptionRequest(model: model, fileName: fileName, fileType: file.type ?? "", file: file.bytes))
    }

    private func modelsList(_ request: ReceivedRequest) -> ScriptedResponse {
        guard request.headers["authorization"] == "Bearer \(settings.apiKey)" else {
            return Self.error(401, "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key")
        }
        let data = settings.models.sorted().map { "{\"id\":\"\($0)\",\"object\":\"model\"}" }.joined(separator: ",")
        return .json(200, "{\"object\":\"list\",\"data\":[\(data)]}")
    }

    /// The pieces an answer is streamed in: words with their following space.
    public static func pieces(_ text: String) -> [String] {
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
