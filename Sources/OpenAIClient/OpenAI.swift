import Foundation

/// Wire types of the OpenAI-compatible chat-completions API, exactly as they travel.
public enum OpenAI {
    /// One message of a chat-completions request. Without images its content travels as a string;
    /// with images as content parts: the text, then one `image_url` part (a base64 `data:` URL) per
    /// image, the form every vision-capable compatible server reads.
    public struct Message: Encodable, Sendable, Equatable {
        public var role: Role
        public var content: String
        /// Images that go with a user turn.
        public var images: [Image]

        public init(role: Role, content: String, images: [Image] = []) {
            self.role = role
            self.content = content
            self.images = images
        }

        enum CodingKeys: String, CodingKey { case role, content }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(role, forKey: .role)
            guard !images.isEmpty else {
                try container.encode(content, forKey: .content)
                return
            }
            var parts = container.nestedUnkeyedContainer(forKey: .content)
            if !content.isEmpty { try parts.encode(ContentPart.text(content)) }
            for image in images { try parts.encode(ContentPart.image(image)) }
        }
    }

    /// An image in a request, as its bytes; encoded as a data URL only when the request is.
    public struct Image: Sendable, Equatable {
        /// `image/jpeg`, `image/png`, `image/gif` or `image/webp`.
        public var mimeType: String
        public var data: [UInt8]
        /// In pixels, when known: the token estimate depends on it.
        public var width: Int?
        public var height: Int?

        public init(mimeType: String, data: [UInt8], width: Int? = nil, height: Int? = nil) {
            self.mimeType = mimeType
            self.data = data
            self.width = width
            self.height = height
        }

        /// `data:<type>;base64,<bytes>`.
        var dataURL: String { "data:\(mimeType);base64,\(Data(data).base64EncodedString())" }
    }

    /// One element of a message's `content` array.
    enum ContentPart: Encodable {
        case text(String)
        case image(Image)

        enum CodingKeys: String, CodingKey { case type, text, image_url }
        struct ImageURL: Encodable { var url: String }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .text(let text):
                try container.encode("text", forKey: .type)
                try container.encode(text, forKey: .text)
            case .image(let image):
                try container.encode("image_url", forKey: .type)
                try container.encode(ImageURL(url: image.dataURL), forKey: .image_url)
            }
        }
    }

    /// The roles this project sends.
    public enum Role: String, Codable, Sendable {
        case system, user, assistant
    }

    /// The body of `POST /chat/completions`. Which of `max_tokens` and `max_completion_tokens` is
    /// sent depends on the server: some reject one in favour of the other.
    public struct ChatRequest: Encodable, Sendable {
        public var model: String
        public var messages: [Message]
        public var temperature: Double
        public var maxOutputTokens: Int
        var usesMaxCompletionTokens: Bool
        public var stream: Bool = true

        struct StreamOptions: Encodable { var include_usage = true }

        enum CodingKeys: String, CodingKey {
            case model, messages, temperature, stream
            case streamOptions = "stream_options"
            case maxTokens = "max_tokens"
            case maxCompletionTokens = "max_completion_tokens"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(model, forKey: .model)
            try container.encode(messages, forKey: .messages)
            try container.encode(temperature, forKey: .temperature)
            try container.encode(stream, forKey: .stream)
            if stream { try container.encode(StreamOptions(), forKey: .streamOptions) }
            try container.encode(
                maxOutputTokens, forKey: usesMaxCompletionTokens ? .maxCompletionTokens : .maxTokens)
        }
    }

    /// Token counts as the server reports them. Either may be missing (or not a number) at some
    /// servers; a missing one is estimated by the caller, never a reason to reject the chunk.
    public struct Usage: Decodable, Sendable, Equatable {
        public var promptTokens: Int?
        public var completionTokens: Int?

        public init(promptTokens: Int?, completionTokens: Int?) {
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
        }

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            promptTokens = (try? container.decodeIfPresent(Int.self, forKey: .promptTokens)).flatMap { $0 }.flatMap { $0 >= 0 ? $0 : nil }
            completionTokens = (try? container.decodeIfPresent(Int.self, forKey: .completionTokens)).flatMap { $0 }.flatMap { $0 >= 0 ? $0 : nil }
        }

        /// Both counts, when the server gave both.
        var isComplete: Bool { promptTokens != nil && completionTokens != nil }
    }

    /// One `data:` event of a streamed answer. Every field may be missing: some chunks carry only
    /// the role, only a finish reason, or only usage (with `choices: []`).
    ///
    /// Read from a `JSONValue`, not through `JSONDecoder`: this runs for every event of every answer,
    /// and `JSONDecoder` cost more CPU than everything else the bot does per event.
    struct ChatChunk: Sendable {
        struct Choice: Sendable {
            public var content: String?
            var finishReason: String?
        }
        public var model: String?
        public var choices: [Choice]?
        public var usage: Usage?
        public var error: ErrorBody.Detail?

        /// Throws when the event is not JSON, or `choices`, a `delta`'s `content`, a
        /// `finish_reason` or `error` has the wrong type. `model` and `usage` are read leniently:
        /// a surprising shape there costs the detail, not the answer.
        init(_ payload: String) throws {
            let json = try JSONValue.parse(payload)
            guard case .object = json else { throw JSONValue.Malformed() }
            model = json["model"]?.string
            switch json["choices"] {
            case nil, .null?:
                choices = nil
            case .array(let list)?:
                choices = try list.map { choice in
                    guard case .object = choice else { throw JSONValue.Malformed() }
                    return Choice(content: try Self.optionalString(choice["delta"]?["content"]), finishReason: try Self.optionalString(choice["finish_reason"]))
                }
            default:
                throw JSONValue.Malformed()
            }
            if case .object? = json["usage"] {
                let count = { (key: String) in json["usage"]?[key]?.integer.flatMap { $0 >= 0 ? $0 : nil } }
                usage = Usage(promptTokens: count("prompt_tokens"), completionTokens: count("completion_tokens"))
            }
            switch json["error"] {
            case nil, .null?: error = nil
            case .object(let detail)?: error = ErrorBody.Detail(JSONValue.object(detail))
            default: throw JSONValue.Malformed()
            }
        }

        private static func optionalString(_ value: JSONValue?) throws -> String? {
            switch value {
            case nil, .null?: return nil
            case .string(let text)?: return text
            default: throw JSONValue.Malformed()
            }
        }
    }

    /// An error answer. OpenAI sends `{"error": {...}}`; some compatible servers send
    /// `{"detail": "..."}` or a bare `{"message": "..."}`.
    struct ErrorBody: Decodable, Sendable {
        struct Detail: Decodable, Sendable {
            public var message: String?
            public var type: String?
            public var code: String?
            var param: String?

            enum CodingKeys: String, CodingKey { case message, type, code, param }

            init(_ json: JSONValue) {
                message = json["message"]?.string
                type = json["type"]?.string
                param = json["param"]?.string
                code = json["code"]?.string ?? json["code"]?.integer.map(String.init)
            }

            public init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                message = try? container.decodeIfPresent(String.self, forKey: .message)
                type = try? container.decodeIfPresent(String.self, forKey: .type)
                param = try? container.decodeIfPresent(String.self, forKey: .param)
                // `code` is a string at OpenAI and a number at some other servers.
                if let text = try? container.decodeIfPresent(String.self, forKey: .code) {
                    code = text
                } else if let number = try? container.decodeIfPresent(Int.self, forKey: .code) {
                    code = String(number)
                } else {
                    code = nil
                }
            }
        }
        public var error: Detail?
        public var detail: String?
        public var message: String?

        enum CodingKeys: String, CodingKey { case error, detail, message }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            error = try? container.decodeIfPresent(Detail.self, forKey: .error)
            if error == nil, let text = try? container.decodeIfPresent(String.self, forKey: .error) {
                error = nil
                message = text
            }
            detail = try? container.decodeIfPresent(String.self, forKey: .detail)
            if message == nil { message = try? container.decodeIfPresent(String.self, forKey: .message) }
        }

        /// The most specific human-readable text the server gave.
        public var text: String? { error?.message ?? detail ?? message }
    }
}
