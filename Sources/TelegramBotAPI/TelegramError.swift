/// A Bot API failure, decoded from Telegram's error envelope. Never carries a URL: the bot token is
/// part of every Bot API URL.
public enum TelegramError: Error, Sendable, Equatable {
    /// 429: wait `retryAfter` seconds before calling for this chat again.
    case rateLimited(retryAfter: Int)
    /// 400 "message is not modified": the edit was a no-op. Callers treat it as success.
    case notModified
    /// 400 "message to edit not found" (deleted by the user, or too old).
    case messageToEditNotFound
    /// 400 "can't parse entities: …".
    case cannotParseEntities(String)
    /// 400 "message is too long".
    case messageTooLong
    /// 400 "group chat was upgraded to a supergroup chat": use `chatID` from now on.
    case migrated(chatID: Int64)
    /// 403: blocked by the user, kicked from the group, user deactivated.
    case forbidden(String)
    /// 401: the token is wrong or revoked.
    case unauthorized
    /// 409: another poller, or a webhook is set.
    case conflict(String)
    /// 404: unknown method (or a server without it, like drafts on an old Bot API server).
    case notFound(String)
    /// Any other 400.
    case badRequest(String)
    /// 5xx.
    case server(status: Int)
    /// The request may have reached Telegram but no answer came back (a reset or a timeout after it
    /// was sent): it may have been applied. The description names the failure, not the URL.
    case network(String)
    /// The request never left: no connection could be made (refused, no route, no DNS).
    case unreachable(String)
    /// An answer that is not a Bot API envelope.
    case malformedResponse(status: Int)
    /// A file over what the Bot API lets a bot download (20 MB on the cloud Bot API).
    case fileTooBig(limit: Int)

    init(status: Int, description: String, parameters: Telegram.ResponseParameters?) {
        let lowered = description.lowercased()
        if let retryAfter = parameters?.retry_after, status == 429 {
            self = .rateLimited(retryAfter: Self.clamped(retryAfter))
        } else if let chatID = parameters?.migrate_to_chat_id {
            self = .migrated(chatID: chatID)
        } else {
            switch status {
            case 429: self = .rateLimited(retryAfter: Self.retryAfter(in: description) ?? 1)
            case 400 where lowered.contains("message is not modified"): self = .notModified
            case 400 where lowered.contains("message to edit not found"): self = .messageToEditNotFound
            case 400 where lowered.contains("can't parse entities"): self = .cannotParseEntities(description)
            case 400 where lowered.contains("message is too long") || lowered.contains("text is too long"): self = .messageTooLong
            case 400 where lowered.contains("file is too big"): self = .fileTooBig(limit: BotAPIClient.downloadLimit)
            case 401: self = .unauthorized
            case 403: self = .forbidden(description)
            case 404: self = .notFound(description)
            case 409: self = .conflict(description)
            case 500...599: self = .server(status: status)
            default: self = .badRequest(description)
            }
        }
    }

    /// "Too Many Requests: retry after 35" → 35, clamped like `parameters.retry_after`.
    static func retryAfter(in description: String) -> Int? {
        guard let range = description.range(of: "retry after ") else { return nil }
        let digits = description[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty else { return nil }
        return clamped(Int(digits) ?? Int.max)
    }

    /// A wait from the network, kept between 1 s and a day so that clock arithmetic cannot overflow.
    static func clamped(_ seconds: Int) -> Int { min(max(seconds, 1), 86_400) }

    /// Telegram may have applied the call although it failed: a 5xx, an answer that is not an
    /// envelope, or a connection lost after the request was sent. The Bot API has no idempotency
    /// key, so repeating such a send can show it twice.
    var isAmbiguous: Bool {
        switch self {
        case .server, .network, .malformedResponse: true
        default: false
        }
    }

    /// Worth trying again later: Telegram or the way to it is having trouble.
    var isTransient: Bool {
        if case .unreachable = self { return true }
        return isAmbiguous
    }

    /// A stable label for the structured log's `error_type`.
    public var errorType: String {
        switch self {
        case .rateLimited: "telegram_rate_limited"
        case .notModified: "telegram_not_modified"
        case .messageToEditNotFound: "telegram_message_to_edit_not_found"
        case .cannotParseEntities: "telegram_cannot_parse_entities"
        case .messageTooLong: "telegram_message_too_long"
        case .migrated: "telegram_migrated"
        case .forbidden: "telegram_forbidden"
        case .unauthorized: "telegram_unauthorized"
        case .conflict: "telegram_conflict"
        case .notFound: "telegram_not_found"
        case .badRequest: "telegram_bad_request"
        case .server: "telegram_server_error"
        case .network: "telegram_network"
        case .unreachable: "telegram_unreachable"
        case .malformedResponse: "telegram_malformed_response"
        case .fileTooBig: "telegram_file_too_big"
        }
    }
}
