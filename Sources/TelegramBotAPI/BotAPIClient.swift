import Support
import CurlHTTP
import Foundation

/// A small typed client for the Bot API methods this bot uses. JSON bodies in, the Telegram
/// envelope decoded on every status into `TelegramError`.
///
/// The token is part of every URL, so no URL, request or transport error text ever leaves this type:
/// errors carry the method name and a failure code only.
public struct BotAPIClient: Sendable {
    /// Told of every call's outcome: the method, and the error when it failed (for /metrics).
    public typealias Observer = @Sendable (_ method: String, _ failure: TelegramError?) -> Void

    private let baseURL: URL
    private let token: Secret
    private let http: HTTPClient
    private let observer: Observer?

    /// `baseURL` is `https://api.telegram.org` or a self-hosted Bot API server.
    public init(baseURL: URL, token: Secret, http: HTTPClient, observer: Observer? = nil) {
        self.baseURL = baseURL
        self.token = token
        self.http = http
        self.observer = observer
    }

    /// The largest file the cloud Bot API lets a bot download.
    public static let downloadLimit = 20 * 1024 * 1024

    /// One coder each for every call (making them per call was a measurable share of a reply's CPU).
    static let encoder = JSONEncoder()
    static let decoder = JSONDecoder()
    /// Telegram's answer when a method's result is just `true`.
    static let plainTrue = Array(#"{"ok":true,"result":true}"#.utf8)

    /// Calls `method` with `parameters` as a JSON body. `timeout` bounds the whole call.
    func call<Parameters: Encodable, Result: Decodable>(
        _ method: String, _ parameters: Parameters, timeout: TimeInterval = 30, as: Result.Type = Result.self
    ) async throws -> Result {
        guard let observer else { return try await perform(method, parameters, timeout: timeout) }
        do {
            let result: Result = try await perform(method, parameters, timeout: timeout)
            observer(method, nil)
            return result
        } catch let error as TelegramError {
            observer(method, error)
            throw error
        }
    }

    private func perform<Parameters: Encodable, Result: Decodable>(
        _ method: String, _ parameters: Parameters, timeout: TimeInterval
    ) async throws -> Result {
        let request = HTTPRequest(
            method: "POST", url: baseURL.appending(path: "bot\(token.value)/\(method)"),
            headers: [("Content-Type", "application/json")], body: Array(try Self.encoder.encode(parameters)))

        let status: Int
        let body: Data
        do {
            let response = try await http.fetch(request, deadline: .seconds(timeout + 5), limit: 64 << 20)
            (status, body) = (response.status, Data(response.body))
        } catch let error as HTTPClientError {
            throw Self.transportError(error, method: method, timeout: timeout + 5)
        }
        // Drafts and chat actions, most of a reply's calls, answer exactly this: no decoder needed.
        if status == 200, body.elementsEqual(Self.plainTrue), let result = true as? Result { return result }
        if let envelope = try? Self.decoder.decode(Telegram.Envelope<Result>.self, from: body), envelope.ok,
            let result = envelope.result
        {
            return result
        }
        throw Self.failure(body, status: status)
    }

    /// What an answer that is not a success means: the error in Telegram's envelope, or, when the
    /// answer is not an error envelope at all, a malformed response.
    static func failure(_ body: Data, status: Int) -> TelegramError {
        guard let envelope = try? decoder.decode(Telegram.Envelope<Bool>.self, from: body), !envelope.ok else {
            return .malformedResponse(status: status)
        }
        return TelegramError(status: envelope.error_code ?? status, description: envelope.description ?? "", parameters: envelope.parameters)
    }

    /// A transport failure in Telegram's terms, naming the method, never the URL.
    static func transportError(_ error: HTTPClientError, method: String, timeout: TimeInterval) -> TelegramError {
        switch error.kind {
        case .cannotConnect, .cannotResolve, .invalidURL:
            .unreachable("\(method): \(error)")  // nothing reached Telegram
        case .timedOut:
            .network("\(method): no answer within \(Int(timeout)) s")
        default:
            .network("\(method): \(error)")
        }
    }

    // MARK: Methods

    /// What Telegram knows of a file users sent: its size and the path to download it from.
    public func getFile(_ fileID: String) async throws -> Telegram.File {
        struct Parameters: Encodable { var file_id: String }
        return try await call("getFile", Parameters(file_id: fileID))
    }

    /// Downloads a file `getFile` described, from `{TELEGRAM_API_URL}/file/bot<token>/<file_path>`
    /// (the same for a local Bot API server). A file whose stated size is over `limit` is refused
    /// before anything is downloaded, and a body that grows past it is cut off: both are
    /// `TelegramError.fileTooBig`. With `prefix`, only the first `prefix` bytes are read and the rest
    /// of the transfer is dropped, so memory holds no more than that. Like every call, no error names
    /// the URL, which holds the token.
    public func download(
        _ file: Telegram.File, limit: Int = BotAPIClient.downloadLimit, prefix: Int? = nil, timeout: TimeInterval = 60
    ) async throws -> [UInt8] {
        if let size = file.file_size, size > limit { throw TelegramError.fileTooBig(limit: limit) }
        guard let path = file.file_path, !path.isEmpty else { throw TelegramError.malformedResponse(status: 200) }
        // A local Bot API server started with --local names the file on its disk instead.
        if path.hasPrefix("/") { return try Self.readLocal(path, limit: limit, prefix: prefix) }
        var request = HTTPRequest(method: "GET", url: baseURL.appending(path: "file/bot\(token.value)/\(path)"))
        request.totalTimeout = .seconds(timeout)
        do {
            let response = try await http.send(request)
            guard response.status == 200 else {
                throw Self.failure(Data(try await response.body.collect(upTo: 64 * 1024)), status: response.status)
            }
            var bytes: [UInt8] = []
            for try await chunk in response.body {
                bytes += chunk
                if let prefix, bytes.count >= prefix { return Array(bytes[..<prefix]) }  // the rest is never read
                if bytes.count > limit { throw TelegramError.fileTooBig(limit: limit) }
            }
            return bytes
        } catch let error as HTTPClientError {
            if case .bodyTooLarge = error.kind { throw TelegramError.fileTooBig(limit: limit) }
            throw Self.transportError(error, method: "download", timeout: timeout)
        }
    }

    /// A file a local Bot API server (`--local`) keeps on a disk this process shares: read from
    /// there, with the same limits as a download. An unreadable file is a network-like failure.
    static func readLocal(_ path: String, limit: Int, prefix: Int?) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TelegramError.network("the local Bot API server's file is not readable here (share its directory with the bot)")
        }
        defer { try? handle.close() }
        let wanted = min(prefix ?? Int.max, limit + 1)
        let bytes = Array((try? handle.read(upToCount: wanted)) ?? Data())
        if prefix == nil || prefix! > limit, bytes.count > limit { throw TelegramError.fileTooBig(limit: limit) }
        return bytes
    }

    public func getMe() async throws -> Telegram.User {
        try await call("getMe", Empty())
    }

    /// Long-polls for updates, each decoded on its own. The HTTP timeout is set above the poll
    /// timeout, as it must be.
    public func getUpdates(offset: Int64?, timeout: Int, limit: Int = 100) async throws -> [Telegram.PolledUpdate] {
        struct Parameters: Encodable {
            var offset: Int64?
            var timeout: Int
            var limit: Int
            var allowed_updates = Telegram.allowedUpdates
        }
        return try await call("getUpdates", Parameters(offset: offset, timeout: timeout, limit: limit), timeout: TimeInterval(timeout + 15))
    }

    /// Switches the bot to polling; pending updates are kept.
    public func deleteWebhook() async throws {
        struct Parameters: Encodable { var drop_pending_updates = false }
        let _: Bool = try await call("deleteWebhook", Parameters())
    }

    /// Webhook mode: Telegram posts each update to `url` with `secretToken` in a header. Pending
    /// updates are kept: they go to the webhook.
    public func setWebhook(url: URL, secretToken: Secret, allowedUpdates: [String], maxConnections: Int) async throws {
        struct Parameters: Encodable {
            var url: String
            var secret_token: String
            var allowed_updates: [String]
            var max_connections: Int
            var drop_pending_updates = false
        }
        let _: Bool = try await call(
            "setWebhook",
            Parameters(url: url.absoluteString, secret_token: secretToken.value, allowed_updates: allowedUpdates, max_connections: maxConnections))
    }

    /// The webhook Telegram has for this bot ("" when polling) and how many updates wait for it.
    public func getWebhookInfo() async throws -> Telegram.WebhookInfo {
        try await call("getWebhookInfo", [String: String]())
    }

    public func setMyCommands(_ commands: [Telegram.BotCommand]) async throws {
        struct Parameters: Encodable { var commands: [Telegram.BotCommand] }
        let _: Bool = try await call("setMyCommands", Parameters(commands: commands))
    }

    /// Sends text with entities and no `parse_mode`: nothing to escape, no parse failure possible.
    public func sendMessage(
        chatID: Int64, text: String, entities: [Telegram.MessageEntity], replyTo: Int? = nil, threadID: Int? = nil
    ) async throws -> Telegram.Message {
        struct Parameters: Encodable {
            var chat_id: Int64
            var message_thread_id: Int?
            var text: String
            var entities: [Telegram.MessageEntity]?
            var reply_parameters: Telegram.ReplyParameters?
            var link_preview_options = LinkPreviewOptions()
        }
        return try await call(
            "sendMessage",
            Parameters(
                chat_id: chatID, message_thread_id: threadID, text: text, entities: entities.isEmpty ? nil : entities,
                reply_parameters: replyTo.map { Telegram.ReplyParameters(message_id: $0) }))
    }

    /// Replaces a message's text. `TelegramError.notModified` is returned as success.
    public func editMessageText(chatID: Int64, messageID: Int, text: String, entities: [Telegram.MessageEntity]) async throws {
        struct Parameters: Encodable {
            var chat_id: Int64
            var message_id: Int
            var text: String
            var entities: [Telegram.MessageEntity]?
            var link_preview_options = LinkPreviewOptions()
        }
        do {
            let _: Telegram.Message = try await call(
                "editMessageText",
                Parameters(chat_id: chatID, message_id: messageID, text: text, entities: entities.isEmpty ? nil : entities))
        } catch TelegramError.notModified {
            return
        }
    }

    /// Shows (or updates, for the same `draftID`) a streamed draft in a private chat.
    public func sendMessageDraft(
        chatID: Int64, draftID: Int64, text: String, entities: [Telegram.MessageEntity], canStop: Bool, threadID: Int? = nil
    ) async throws {
        struct Parameters: Encodable {
            var chat_id: Int64
            var message_thread_id: Int?
            var draft_id: Int64
            var text: String
            var entities: [Telegram.MessageEntity]?
            var can_stop: Bool
        }
        let _: Bool = try await call(
            "sendMessageDraft",
            Parameters(
                chat_id: chatID, message_thread_id: threadID, draft_id: draftID, text: text,
                entities: entities.isEmpty ? nil : entities, can_stop: canStop))
    }

    func sendChatAction(chatID: Int64, action: String = "typing", threadID: Int? = nil) async throws {
        struct Parameters: Encodable {
            var chat_id: Int64
            var message_thread_id: Int?
            var action: String
        }
        let _: Bool = try await call("sendChatAction", Parameters(chat_id: chatID, message_thread_id: threadID, action: action))
    }

    func deleteMessage(chatID: Int64, messageID: Int) async throws {
        struct Parameters: Encodable {
            var chat_id: Int64
            var message_id: Int
        }
        let _: Bool = try await call("deleteMessage", Parameters(chat_id: chatID, message_id: messageID))
    }

    private struct Empty: Encodable {}

    /// Answers are text; link previews of URLs the model mentions would only add noise.
    private struct LinkPreviewOptions: Encodable { var is_disabled = true }
}
