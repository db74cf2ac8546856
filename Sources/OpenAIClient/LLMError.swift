/// Everything that can go wrong with a model call, with the context a caller needs to decide what to
/// do. The user-facing text (`userMessage`) is separate from the log label (`errorType`).
public indirect enum LLMError: Error, Sendable, Equatable {
    /// 429 `rate_limit_exceeded`: worth retrying after `retryAfter` (from the `Retry-After` header).
    case rateLimited(retryAfter: Duration?)
    /// 429 `insufficient_quota`: the account is out of credit. Never retried.
    case quotaExceeded
    /// 400 `context_length_exceeded`: the request is too long for the model.
    case contextLengthExceeded
    /// 400 rejecting `max_tokens` in favour of `max_completion_tokens`.
    case maxTokensUnsupported
    /// Any other 400/422.
    case badRequest(message: String)
    /// The request had images and the server or model said it cannot take them.
    case imagesUnsupported
    /// 401/403: the key is wrong or lacks access. A configuration error, never retried.
    case unauthorized(status: Int, message: String)
    /// 404: the model (or the endpoint) does not exist.
    case modelNotFound(message: String)
    /// 5xx.
    case server(status: Int)
    /// Any other unexpected HTTP status.
    case unexpectedStatus(Int)
    /// The connection failed or broke before an answer began.
    case connection(String)
    /// No byte, no progress or no end in time.
    case timeout(Timeout)
    /// HTTP 200 but not a single event (llama.cpp does this on context overflow).
    case emptyStream
    /// The stream stopped without `[DONE]` or a finish reason: the connection dropped.
    case streamEndedUnexpectedly
    /// A `data:` line that is not the JSON chunk it should be.
    case malformedEvent
    /// An `{"error": …}` event inside a 200 stream.
    case streamError(message: String)
    /// The answer broke after some text reached the user; `partial` is that text.
    case interrupted(partial: String, cause: LLMError)

    /// Which deadline ran out.
    public enum Timeout: String, Sendable {
        case firstByte = "first_byte"
        case idle
        case total
    }

    /// A stable snake_case label for the structured log's `error_type`.
    public var errorType: String {
        switch self {
        case .rateLimited: "rate_limited"
        case .quotaExceeded: "quota_exceeded"
        case .contextLengthExceeded: "context_length_exceeded"
        case .maxTokensUnsupported: "max_tokens_unsupported"
        case .badRequest: "bad_request"
        case .imagesUnsupported: "images_unsupported"
        case .unauthorized: "unauthorized"
        case .modelNotFound: "model_not_found"
        case .server: "server_error"
        case .unexpectedStatus: "unexpected_status"
        case .connection: "connection"
        case .timeout(let kind): "timeout_\(kind.rawValue)"
        case .emptyStream: "empty_stream"
        case .streamEndedUnexpectedly: "stream_ended_unexpectedly"
        case .malformedEvent: "malformed_event"
        case .streamError: "stream_error"
        case .interrupted(_, let cause): "interrupted_\(cause.errorType)"
        }
    }

    /// Transient faults that the same request may survive.
    var isRetryable: Bool {
        switch self {
        case .rateLimited, .server, .connection, .timeout(.firstByte), .timeout(.idle), .emptyStream,
            .streamEndedUnexpectedly, .malformedEvent, .streamError:
            true
        default:
            false
        }
    }

    /// Faults where another model may do better once the primary has failed.
    var allowsFallback: Bool {
        switch self {
        // A whole deadline spent on one model is not worth spending again on it, but another may do.
        case .modelNotFound, .timeout(.total), .imagesUnsupported: true
        default: isRetryable
        }
    }

    /// One short sentence for the person in the chat. Never contains server text that could echo a
    /// secret, nor any URL.
    public var userMessage: String {
        switch self {
        case .rateLimited:
            "Rate limit reached. Please wait a moment and try again."
        case .quotaExceeded:
            "The AI provider's quota is used up. Please tell the bot's operator."
        case .contextLengthExceeded:
            "This conversation is too long for the model. Use /clear to start over."
        case .maxTokensUnsupported, .badRequest, .unexpectedStatus:
            "The AI provider rejected the request. Please try again or tell the bot's operator."
        case .imagesUnsupported:
            "This model can't see images; /model lists the others."
        case .unauthorized:
            "The AI provider rejected the bot's API key. Please tell the bot's operator."
        case .modelNotFound:
            "The configured model is not available. Please tell the bot's operator."
        case .server, .emptyStream, .streamEndedUnexpectedly, .malformedEvent, .streamError:
            "The AI provider had a problem answering. Please try again in a moment."
        case .connection:
            "Could not reach the AI provider. Please try again in a moment."
        case .timeout:
            "The AI provider took too long to answer. Please try again."
        case .interrupted:
            "The answer was interrupted."
        }
    }
}
