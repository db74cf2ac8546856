import Foundation
import Synchronization

/// A fake Telegram Bot API server on 127.0.0.1 that is as strict as Telegram where it matters to
/// this bot: per-chat, per-group and global flood limits answered with 429 and `retry_after`,
/// "message is not modified", the 4096-code-point limit, entity bounds in UTF-16, 409 for a second
/// poller, drafts only in private chats, migrated groups, blocked users and unknown methods.
///
/// Tests inject updates with `deliver`, then read what users would see with `visibleMessages`.
public final class FakeTelegramServer: Sendable {
    /// Flood limits, as token buckets (capacity, refill per second) and Telegram's 20-per-minute
    /// sliding window for groups. `scale` multiplies every rate, so tests run faster with the same shape.
    public struct Limits: Sendable {
        public var perChatBurst: Double = 3
        public var perChatPerSecond: Double = 1
        public var perGroupPerMinute: Int = 20
        public var globalBurst: Double = 30
        public var globalPerSecond: Double = 30
        public var scale: Double = 1

        public init(scale: Double = 1) { self.scale = scale }
    }

    /// A message the bot sent, as the chat shows it now.
    public struct SentMessage: Sendable, Equatable {
        public var chatID: Int64
        public var messageID: Int
        public var text: String
        public var entities: [Entity]
        public var replyTo: Int?
        public var edits: Int
    }

    public struct Entity: Codable, Sendable, Equatable {
        public var type: String
        public var offset: Int
        public var length: Int
        public var url: String?
        public var language: String?
    }

    /// One call the bot made.
    public struct Call: Sendable {
        public var method: String
        public var parameters: [String: JSONValue]
        /// When the answer went out (for a long poll, when it ended).
        public var at: ContinuousClock.Instant
        public var status: Int
        /// When the request arrived.
        public var receivedAt: ContinuousClock.Instant
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    /// A file users sent, as `getFile` and the file endpoint serve it.
    struct StoredFile {
        var path: String
        var bytes: [UInt8]
        /// What `getFile` reports as `file_size` (nil: not reported).
        var reportedSize: Int?
    }

    private struct State {
        var stallDownloads = false
        var pendingUpdates: [String] = []  // JSON of each update, in order
        var nextUpdateID: Int64 = 1000
        var pollGeneration = 0
        var webhookSet = false
        var chats: [Int64: String] = [:]  // id → type
        var files: [String: StoredFile] = [:]  // file_id → file
        var blocked: Set<Int64> = []
        var migrated: [Int64: Int64] = [:]
        var messages: [Int64: [SentMessage]] = [:]
        var drafts: [Int64: [Int64: String]] = [:]  // chat → draft id → text
        var nextMessageID = 1
        var calls: [Call] = []
        var chatBuckets: [Int64: Bucket] = [:]
        var groupWindows: [Int64: [ContinuousClock.Instant]] = [:]
        var globalBucket: Bucket?
        var tooManyRequests = 0
        /// Which budget each flood refusal came from: `chat ID`, `group ID` or `global`.
        var floodRejections: [String] = []
        var firstPollArrival: ContinuousClock.Instant?
        var commands: [[String: JSONValue]] = []
        var failNext: [String: [(Int, String)]] = [:]
        var heldMethods: Set<String> = []
        var heldAnswers = 0
        var hangUps: [String: Int] = [:]
        var rawNext: [String: [(Int, String)]] = [:]
        var outage = false
        /// Once ids have restarted, an offset beyond every queued id is ignored, as Telegram does.
        var idsRestarted = false
        /// Set by `setWebhook`: pending updates are posted there instead of served to getUpdates.
        var webhook: WebhookPusher.Target?
        var webhookSetAt: ContinuousClock.Instant?
        var webhookListening: [Bool] = []
        /// When an update that was not answered 2xx may be posted again.
        var webhookRetryAt: [Int64: ContinuousClock.Instant] = [:]
        /// Every post and its status (nil: no answer).
        var webhookPosts: [(updateID: Int64, status: Int?)] = []
        var stopped = false
        /// Updates wait instead of being posted (as while Telegram's retry timer runs).
        var pushesHeld = false
        /// A load balancer in front of replicas: posts go to these hosts and ports in turn.
        var balancedTo: [URL] = []
        var balancedPosts = 0
    }

    public let token: String
    public let bot: (id: Int64, username: String)
    public let limits: Limits
    public let supportsDrafts: Bool
    private let state = Mutex(State())
    private let condition = NSCondition()
    private let server = Mutex<FakeHTTPServer?>(nil)
    private let pusher = WebhookPusher()

    /// `keepAlive: false` closes every connection after its answer, as a proxy in between may.
    ///
    /// Each server has a token of its own unless one is given: a bot that outlived its test, polling
    /// a port the kernel has since given another test's fake, is refused (401) and stops, instead of
    /// taking that test's updates.
    public init(
        token: String? = nil, botUsername: String = "test_assistant_bot", limits: Limits = Limits(),
        supportsDrafts: Bool = true, keepAlive: Bool = true
    ) throws {
        self.token = token ?? "123456:TEST-token-" + String((0..<22).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        self.bot = (id: 123456, username: botUsername)
        self.limits = limits
        self.supportsDrafts = supportsDrafts
        let http = try FakeHTTPServer(keepAlive: keepAlive) { [weak self] request in
            self?.respond(request) ?? .json(503, "{}")
        }
        server.withLock { $0 = http }
    }

    deinit {
        state.withLock { $0.stopped = true }
        server.withLock { $0?.shutdown() }
    }

    public var baseURL: URL { URL(string: "http://127.0.0.1:\(server.withLock { $0!.port })")! }

    // MARK: Scripting

    /// Makes a chat known, as if the user had opened it; `type` is `private`, `group` or `supergroup`.
    /// Makes a file available under `id`: `getFile` gives its path and size, and
    /// `/file/bot<token>/<path>` serves its bytes. Like the cloud Bot API, `getFile` refuses files
    /// over 20 MB ("file is too big"); `reportedSize` overrides the size it states.
    public func addFile(id: String, path: String, bytes: [UInt8], reportedSize: Int? = nil) {
        state.withLock { $0.files[id] = StoredFile(path: path, bytes: bytes, reportedSize: reportedSize ?? bytes.count) }
    }

    public func addChat(_ id: Int64, type: String) {
        state.withLock { $0.chats[id] = type }
    }

    /// The user blocked the bot: every send to the chat answers 403.
    public func block(chatID: Int64) {
        state.withLock { _ = $0.blocked.insert(chatID) }
    }

    /// The group became a supergroup with a new id: sends to the old id answer 400 with `migrate_to_chat_id`.
    public func migrate(chatID: Int64, to newID: Int64) {
        state.withLock {
            $0.migrated[chatID] = newID
            $0.chats[newID] = "supergroup"
        }
    }

    /// Telegram is down (`true`) or back (`false`): while down every call answers 502 Bad Gateway,
    /// as Telegram's front ends do during an outage.
    public func setOutage(_ down: Bool) {
        state.withLock { $0.outage = down }
        wakePolls()
    }

    /// Forgets the calls recorded and the messages shown so far (flood buckets stay), so a long soak
    /// run keeps the fake's memory flat.
    public func forgetHistory() {
        state.withLock {
            $0.calls.removeAll()
            $0.messages.removeAll()
            $0.drafts.removeAll()
        }
    }

    /// The user deletes one of the bot's messages: edits of it answer "message to edit not found".
    public func userDeletes(chatID: Int64, messageID: Int) {
        state.withLock { $0.messages[chatID]?.removeAll { $0.messageID == messageID } }
    }

    /// Sets a webhook, so getUpdates answers 409 until deleteWebhook.
    public func setWebhook() {
        state.withLock { $0.webhookSet = true }
    }

    /// The next call of `method` fails with this status and description.
    public func failNext(_ method: String, status: Int, description: String) {
        state.withLock { $0.failNext[method, default: []].append((status, description)) }
    }

    /// The next call of `method` is answered with this raw body (a proxy's HTML page, cut JSON),
    /// without taking effect.
    public func answerNextRaw(_ method: String, status: Int, body: String) {
        state.withLock { $0.rawNext[method, default: []].append((status, body)) }
    }

    /// Calls of `method` take effect (a message becomes visible) but get no answer until
    /// `answerHeld()`: the moment when Telegram has a message and the bot does not yet know it.
    public func holdAnswers(to method: String) {
        state.withLock { _ = $0.heldMethods.insert(method) }
    }

    /// Answers the held calls and stops holding.
    public func answerHeld() {
        state.withLock { $0.heldMethods.removeAll() }
    }

    /// The next `count` calls of `method` take effect, then the connection is cut before any answer:
    /// the ambiguous failure, where Telegram has the message and the bot cannot know it.
    public func hangUpAfterApplying(_ method: String, count: Int = 1) {
        state.withLock { $0.hangUps[method, default: 0] += count }
    }

    /// How many calls are applied and waiting for their answer.
    public var heldAnswers: Int { state.withLock { $0.heldAnswers } }

    /// Telegram's ids after a week without updates: the next `update_id` is chosen afresh and may be
    /// lower than every id handed out before (or equal to one of them).
    public func restartUpdateIDs(at id: Int64) {
        state.withLock {
            $0.nextUpdateID = id
            $0.idsRestarted = true
        }
    }

    /// Queues an update whose JSON body (without `update_id`) is given; returns its id.
    @discardableResult
    public func deliver(updateJSON body: String) -> Int64 {
        let id = state.withLock { state -> Int64 in
            let id = state.nextUpdateID
            state.nextUpdateID += 1
            state.pendingUpdates.append("{\"update_id\":\(id),\(body)}")
            return id
        }
        wakePolls()
        return id
    }

    /// Queues a text message from a user. Returns the update id.
    @discardableResult
    public func deliverText(
        _ text: String, chatID: Int64, chatType: String = "private", userID: Int64? = nil, isBot: Bool = false,
        messageID: Int = 1, replyToBotMessage: Int? = nil, username: String? = nil, replyToJSON: String? = nil
    ) -> Int64 {
        addChat(chatID, type: chatType)
        let from = userID ?? chatID
        var message = "\"message_id\":\(messageID),\"date\":1700000000,"
        message += "\"from\":{\"id\":\(from),\"is_bot\":\(isBot),\"first_name\":\"User\(from)\"\(username.map { ",\"username\":\"\($0)\"" } ?? "")},"
        message += "\"chat\":{\"id\":\(chatID),\"type\":\"\(chatType)\"\(chatType == "private" ? "" : ",\"title\":\"Group\"")},"
        message += "\"text\":\(FakeOpenAIServer.quoted(text))"
        if let replied = replyToBotMessage {
            message += ",\"reply_to_message\":{\"message_id\":\(replied),\"date\":1700000000,\"chat\":{\"id\":\(chatID),\"type\":\"\(chatType)\"},\"from\":{\"id\":\(bot.id),\"is_bot\":true,\"first_name\":\"Bot\",\"username\":\"\(bot.username)\"},\"text\":\"earlier\"}"
        } else if let replyToJSON {
            message += ",\"reply_to_message\":\(replyToJSON)"
        }
        let entities = Self.entities(in: text)
        if !entities.isEmpty { message += ",\"entities\":\(entities)" }
        return deliver(updateJSON: "\"message\":{\(message)}")
    }

    /// The entities Telegram finds in what a user typed: a leading `/command`, and `@username`
    /// mentions (5–32 letters, digits or underscores), with UTF-16 offsets.
    static func entities(in text: String) -> String {
        var entities: [String] = []
        let units = Array(text.utf16)
        func isNameUnit(_ unit: UTF16.CodeUnit) -> Bool {
            (0x30...0x39).contains(unit) || (0x41...0x5A).contains(unit) || (0x61...0x7A).contains(unit) || unit == 0x5F
        }
        if units.first == 0x2F {
            var end = 1
            while end < units.count, units[end] != 0x20, units[end] != 0x0A { end += 1 }
            entities.append("{\"type\":\"bot_command\",\"offset\":0,\"length\":\(end)}")
        }
        var index = 0
        while index < units.count {
            let startsWord = index == 0 || !isNameUnit(units[index - 1]) && units[index - 1] != 0x40 && units[index - 1] != 0x2F
            if units[index] == 0x40, startsWord {
                var end = index + 1
                while end < units.count, isNameUnit(units[end]) { end += 1 }
                if (5...32).contains(end - index - 1), !(units.first == 0x2F && index < (units.firstIndex(of: 0x20) ?? units.count)) {
                    entities.append("{\"type\":\"mention\",\"offset\":\(index),\"length\":\(end - index)}")
                }
                index = end
            } else {
                index += 1
            }
        }
        return entities.isEmpty ? "" : "[" + entities.joined(separator: ",") + "]"
    }

    /// Queues a photo message, with a caption (and its entities) when given.
    @discardableResult
    public func deliverPhoto(
        chatID: Int64, userID: Int64? = nil, chatType: String = "private", caption: String? = nil, messageID: Int = 7, fileID: String = "photo",
        sizes: [(width: Int, height: Int)] = [(90, 60), (1280, 853)], mediaGroupID: String? = nil, replyTo: String? = nil
    ) -> Int64 {
        addChat(chatID, type: chatType)
        let from = userID ?? chatID
        var message =
            "\"message_id\":\(messageID),\"date\":1700000000,\"from\":{\"id\":\(from),\"is_bot\":false,\"first_name\":\"U\"},\"chat\":{\"id\":\(chatID),\"type\":\"\(chatType)\"},\"photo\":\(addPhoto(fileID, sizes: sizes))"
        if let caption {
            message += ",\"caption\":\(FakeOpenAIServer.quoted(caption))"
            let entities = Self.entities(in: caption)
            if !entities.isEmpty { message += ",\"caption_entities\":\(entities)" }
        }
        if let mediaGroupID { message += ",\"media_group_id\":\"\(mediaGroupID)\"" }
        if let replyTo { message += ",\"reply_to_message\":\(replyTo)" }
        return deliver(updateJSON: "\"message\":{\(message)}")
    }

    /// Stores a photo in `sizes` (JPEG files with those dimensions) and returns its `photo` array
    /// as Telegram sends it, smallest first. Size `i` has file id `<fileID>-<i>`.
    public func addPhoto(_ fileID: String, sizes: [(width: Int, height: Int)]) -> String {
        var elements: [String] = []
        for (index, size) in sizes.enumerated() {
            let bytes = TestImages.jpeg(width: size.width, height: size.height, padding: size.width / 4)
            addFile(id: "\(fileID)-\(index)", path: "photos/\(fileID)_\(index).jpg", bytes: bytes)
            elements.append(
                "{\"file_id\":\"\(fileID)-\(index)\",\"file_unique_id\":\"u-\(fileID)-\(index)\",\"width\":\(size.width),\"height\":\(size.height),\"file_size\":\(bytes.count)}")
        }
        return "[" + elements.joined(separator: ",") + "]"
    }

    /// Queues a voice note of `seconds` (stored as an OGG file under `fileID`).
    @discardableResult
    public func deliverVoice(
        chatID: Int64, userID: Int64? = nil, chatType: String = "private", seconds: Int = 4, messageID: Int = 7, fileID: String = "voice",
        bytes: [UInt8] = Array("OggS".utf8) + Array(repeating: 7, count: 200), replyTo: String? = nil
    ) -> Int64 {
        addChat(chatID, type: chatType)
        addFile(id: fileID, path: "voice/\(fileID).oga", bytes: bytes)
        var message =
            "\"message_id\":\(messageID),\"date\":1700000000,\"from\":{\"id\":\(userID ?? chatID),\"is_bot\":false,\"first_name\":\"U\"},\"chat\":{\"id\":\(chatID),\"type\":\"\(chatType)\"},\"voice\":{\"file_id\":\"\(fileID)\",\"file_unique_id\":\"u-\(fileID)\",\"duration\":\(seconds),\"mime_type\":\"audio/ogg\",\"file_size\":\(bytes.count)}"
        if let replyTo { message += ",\"reply_to_message\":\(replyTo)" }
        return deliver(updateJSON: "\"message\":{\(message)}")
    }

    /// Queues the service message an upgraded group leaves behind.
    @discardableResult
    public func deliverMigration(from oldID: Int64, to newID: Int64) -> Int64 {
        deliver(
            updateJSON:
                "\"message\":{\"message_id\":99,\"date\":1700000000,\"from\":{\"id\":1,\"is_bot\":false,\"first_name\":\"U\"},\"chat\":{\"id\":\(oldID),\"type\":\"group\",\"title\":\"Group\"},\"migrate_to_chat_id\":\(newID)}"
        )
    }

    /// Queues the update Telegram sends when the user presses a draft's stop button.
    @discardableResult
    public func deliverStop(chatID: Int64, draftID: Int64) -> Int64 {
        deliver(updateJSON: "\"stopped_message_generation\":{\"chat\":{\"id\":\(chatID),\"type\":\"private\"},\"draft_id\":\(draftID)}")
    }

    // MARK: What happened

    /// The bot's messages in a chat, oldest first, as they read now.
    public func visibleMessages(chatID: Int64) -> [SentMessage] {
        state.withLock { $0.messages[chatID] ?? [] }
    }

    public var calls: [Call] { state.withLock { $0.calls } }
    /// How many connections the bot has opened so far.
    public var connectionsAccepted: Int { server.withLock { $0?.connectionsAccepted ?? 0 } }
    public func calls(_ method: String) -> [Call] { calls.filter { $0.method == method } }
    /// How many 429s the server answered.
    public var tooManyRequests: Int { state.withLock { $0.tooManyRequests } }
    /// Which budget each flood refusal came from, in order.
    public var floodRejections: [String] { state.withLock { $0.floodRejections } }
    /// When the first `getUpdates` arrived (a long poll is recorded in `calls` only when it ends).
    public var firstPollArrival: ContinuousClock.Instant? { state.withLock { $0.firstPollArrival } }
    /// Updates not yet confirmed by a higher offset.
    public var pendingUpdateCount: Int { state.withLock { $0.pendingUpdates.count } }
    /// getUpdates calls received so far, answered or still waiting.
    public var pollsReceived: Int { state.withLock { $0.pollGeneration } }
    public var registeredCommands: [[String: JSONValue]] { state.withLock { $0.commands } }
    public func drafts(chatID: Int64) -> [Int64: String] { state.withLock { $0.drafts[chatID] ?? [:] } }

    // MARK: Serving

    private func respond(_ request: ReceivedRequest) -> ScriptedResponse {
        let prefix = "/bot\(token)/"
        if request.path.hasPrefix("/file/") { return serveFile(request) }
        guard request.path.hasPrefix("/bot") else { return Self.failure(404, "Not Found") }
        guard request.path.hasPrefix(prefix) else { return Self.failure(401, "Unauthorized") }
        let method = String(request.path.dropFirst(prefix.count))
        let parameters: [String: JSONValue]
        if request.body.isEmpty {
            parameters = [:]
        } else if case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: request.body) {
            parameters = object
        } else {
            return record(method, [:], Self.failure(400, "Bad Request: invalid JSON body"))
        }
        if state.withLock({ $0.outage }) {
            return record(method, parameters, .json(502, "<html><body><h1>502 Bad Gateway</h1></body></html>"))
        }
        if let raw = state.withLock({ state -> (Int, String)? in
            guard var queue = state.rawNext[method], !queue.isEmpty else { return nil }
            let first = queue.removeFirst()
            state.rawNext[method] = queue
            return first
        }) {
            return record(method, parameters, .json(raw.0, raw.1))
        }
        if let scripted = state.withLock({ state -> (Int, String)? in
            guard var queue = state.failNext[method], !queue.isEmpty else { return nil }
            let first = queue.removeFirst()
            state.failNext[method] = queue
            return first
        }) {
            return record(method, parameters, Self.failure(scripted.0, scripted.1))
        }
        let response: ScriptedResponse
        switch method {
        case "getFile":
            response = getFile(parameters)
        case "getMe":
            response = Self.ok("{\"id\":\(bot.id),\"is_bot\":true,\"first_name\":\"Assistant\",\"username\":\"\(bot.username)\"}")
        case "deleteWebhook":
            // Pending updates stay (drop_pending_updates is false): getUpdates serves them now.
            state.withLock {
                $0.webhookSet = false
                $0.webhook = nil
            }
            response = Self.ok("true")
        case "setWebhook":
            response = setWebhook(parameters)
        case "getWebhookInfo":
            let (url, pending) = state.withLock { ($0.webhook?.url.absoluteString ?? "", $0.pendingUpdates.count) }
            response = Self.ok("{\"url\":\"\(url)\",\"has_custom_certificate\":false,\"pending_update_count\":\(pending)}")
        case "setMyCommands":
            response = setMyCommands(parameters)
        case "getUpdates":
            response = getUpdates(parameters)
        case "sendMessage":
            response = send(parameters, edit: false)
        case "editMessageText":
            response = send(parameters, edit: true)
        case "sendMessageDraft" where supportsDrafts:
            response = sendDraft(parameters)
        case "sendChatAction":
            response = chatAction(parameters)
        case "deleteMessage":
            response = deleteMessage(parameters)
        default:
            response = Self.failure(404, "Not Found: method not found")
        }
        holdIfAsked(method)
        let hangUp = state.withLock { state -> Bool in
            guard let left = state.hangUps[method], left > 0 else { return false }
            state.hangUps[method] = left - 1
            return true
        }
        if hangUp {
            _ = record(method, parameters, response, arrived: request.receivedAt)
            return ScriptedResponse(status: response.status, beforeHead: [.hangUp])
        }
        return record(method, parameters, response, arrived: request.receivedAt)
    }

    /// Blocks this connection's own thread (never a test's) while `method` is held, for at most a minute.
    private func holdIfAsked(_ method: String) {
        guard state.withLock({ $0.heldMethods.contains(method) }) else { return }
        state.withLock { $0.heldAnswers += 1 }
        let deadline = ContinuousClock.now + .seconds(60)
        while state.withLock({ $0.heldMethods.contains(method) }), ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        state.withLock { $0.heldAnswers -= 1 }
    }

    /// `GET /file/bot<token>/<file_path>`: the bytes of a file `getFile` described.
    private func serveFile(_ request: ReceivedRequest) -> ScriptedResponse {
        let prefix = "/file/bot\(token)/"
        guard request.path.hasPrefix(prefix) else { return record("file", [:], Self.failure(401, "Unauthorized")) }
        let path = String(request.path.dropFirst(prefix.count))
        guard request.method == "GET", let file = state.withLock({ $0.files.values.first { $0.path == path } }) else {
            return record("file", ["path": .string(path)], Self.failure(404, "Not Found"))
        }
        if state.withLock({ $0.stallDownloads }) {
            // Half the file, then silence: a download a restart interrupts.
            return record(
                "file", ["path": .string(path)],
                ScriptedResponse(
                    status: 200, headers: ["Content-Type": "application/octet-stream"],
                    steps: [.bytes(Data(file.bytes.prefix(file.bytes.count / 2))), .waitForClientClose]))
        }
        return record(
            "file", ["path": .string(path)],
            ScriptedResponse(status: 200, headers: ["Content-Type": "application/octet-stream"], steps: [.bytes(Data(file.bytes))]))
    }

    /// Downloads send half the file and then stall until the client gives up (`true`), or work (`false`).
    public func stallDownloads(_ stall: Bool) {
        state.withLock { $0.stallDownloads = stall }
    }

    private func getFile(_ parameters: [String: JSONValue]) -> ScriptedResponse {
        guard case .string(let id)? = parameters["file_id"], let file = state.withLock({ $0.files[id] }) else {
            return Self.failure(400, "Bad Request: invalid file_id")
        }
        if file.bytes.count > 20 * 1024 * 1024 { return Self.failure(400, "Bad Request: file is too big") }
        let size = file.reportedSize.map { ",\"file_size\":\($0)" } ?? ""
        return .json(200, #"{"ok":true,"result":{"file_id":"\#(id)","file_unique_id":"u\#(id)"\#(size),"file_path":"\#(file.path)"}}"#)
    }

    private func record(
        _ method: String, _ parameters: [String: JSONValue], _ response: ScriptedResponse, arrived: ContinuousClock.Instant = .now
    ) -> ScriptedResponse {
        state.withLock {
            $0.calls.append(Call(method: method, parameters: parameters, at: .now, status: response.status, receivedAt: arrived))
            if response.status == 429 { $0.tooManyRequests += 1 }
        }
        return response
    }

    private func setMyCommands(_ parameters: [String: JSONValue]) -> ScriptedResponse {
        guard case .array(let list)? = parameters["commands"], list.count <= 100 else {
            return Self.failure(400, "Bad Request: commands list is too long or missing")
        }
        var commands: [[String: JSONValue]] = []
        for item in list {
            guard case .object(let command) = item, case .string(let name)? = command["command"],
                case .string(let description)? = command["description"],
                (1...32).contains(name.count), name.allSatisfy({ ($0.isLowercase && $0.isASCII) || $0.isNumber || $0 == "_" }),
                (1...256).contains(description.count)
            else { return Self.failure(400, "Bad Request: BOT_COMMAND_INVALID") }
            commands.append(command)
        }
        state.withLock { $0.commands = commands }
        return Self.ok("true")
    }

    private func getUpdates(_ parameters: [String: JSONValue]) -> ScriptedResponse {
        if state.withLock({ $0.webhookSet }) {
            return Self.failure(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first")
        }
        guard parameters["allowed_updates"] != nil else {
            return Self.failure(400, "Bad Request: this fake insists on an explicit allowed_updates")
        }
        state.withLock { $0.firstPollArrival = $0.firstPollArrival ?? .now }
        var offset = parameters["offset"]?.int64 ?? 0
        let timeout = min(50, max(0, parameters["timeout"]?.int ?? 0))
        let generation = state.withLock { state -> Int in
            state.pollGeneration += 1
            // An offset "in the future" of the restarted ids confirms nothing and is ignored: the
            // queue is served from its head.
            if state.idsRestarted, offset > state.nextUpdateID { offset = 0 }
            // A higher offset confirms (and forgets) every update below it.
            state.pendingUpdates.removeAll { Self.updateID(of: $0) < offset }
            return state.pollGeneration
        }
        wakePolls()  // an older poll ends with 409
        let deadline = Date().addingTimeInterval(Double(timeout))
        condition.lock()
        defer { condition.unlock() }
        while true {
            let (current, ready) = state.withLock { ($0.pollGeneration, $0.pendingUpdates.filter { Self.updateID(of: $0) >= offset }) }
            if current != generation {
                return Self.failure(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running")
            }
            if !ready.isEmpty {
                return Self.ok("[" + ready.prefix(parameters["limit"]?.int ?? 100).joined(separator: ",") + "]")
            }
            if Date() >= deadline { return Self.ok("[]") }
            _ = condition.wait(until: min(deadline, Date().addingTimeInterval(0.05)))
        }
    }

    // MARK: Webhook mode

    /// Like a local Bot API server (`--local`), which takes http:// webhooks on any port: Telegram's
    /// own checks of the secret, `max_connections` and `allowed_updates`, and its 429 for a second
    /// setWebhook within a second.
    private func setWebhook(_ parameters: [String: JSONValue]) -> ScriptedResponse {
        guard let text = parameters["url"]?.string, let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme),
            url.host != nil, url.port != nil
        else {
            return Self.failure(400, "Bad Request: bad webhook: invalid webhook URL specified")
        }
        let secret = parameters["secret_token"]?.string ?? ""
        guard !secret.isEmpty, secret.count <= 256,
            secret.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        else {
            return Self.failure(400, "Bad Request: secret token contains unallowed characters")
        }
        let connections = parameters["max_connections"]?.int ?? 40
        guard (1...100).contains(connections) else { return Self.failure(400, "Bad Request: bad webhook: max_connections must be 1-100") }
        guard parameters["allowed_updates"] != nil else {
            return Self.failure(400, "Bad Request: this fake insists on an explicit allowed_updates")
        }
        // Whether anything listened at the URL when it was set (Telegram posts to it at once).
        let listening = connectTCP(host: url.host == "localhost" ? "127.0.0.1" : url.host!, port: url.port!).map { close($0) } != nil
        let tooSoon = state.withLock { state -> Bool in
            state.webhookListening.append(listening)
            if let last = state.webhookSetAt, ContinuousClock.now - last < .seconds(1) { return true }
            state.webhookSetAt = .now
            state.webhookSet = true
            state.webhook = WebhookPusher.Target(url: url, secret: secret, maxConnections: connections)
            return false
        }
        if tooSoon { return Self.failure(429, "Too Many Requests: retry after 1", parameters: "{\"retry_after\":1}") }
        // Holds the server only while it pumps: a test that lets go of it ends this thread too.
        Thread.detachNewThread { [weak self] in
            while self?.pumpWebhook() == true { Thread.sleep(forTimeInterval: 0.02) }
        }
        return Self.ok("true")
    }

    /// Posts what can be posted now; false once the webhook is gone (the pump thread ends).
    private func pumpWebhook() -> Bool {
        guard case let (target, pending, held)? = state.withLock({ state -> (WebhookPusher.Target, [String], Bool)? in
            guard !state.stopped, let target = state.webhook else { return nil }
            return (target, state.pendingUpdates, state.pushesHeld)
        }) else { return false }
        if held { return true }
        var waiting = Set<Int64>()
        let now = ContinuousClock.now
        for update in pending {
            let id = Self.updateID(of: update)
            let chat = Self.chatID(of: update)
            // A chat's later update waits for the one before it, whatever became of that one.
            guard waiting.insert(chat).inserted else { continue }
            if let retry = state.withLock({ $0.webhookRetryAt[id] }), retry > now { continue }
            var to = target
            if let balanced = state.withLock({ $0.balancedTo.isEmpty ? nil : $0.balancedTo[$0.balancedPosts % $0.balancedTo.count] }),
                var components = URLComponents(url: target.url, resolvingAgainstBaseURL: false)
            {
                components.host = balanced.host
                components.port = balanced.port
                to.url = components.url ?? target.url
            }
            if pusher.post(update, id: id, chatID: chat, to: to, posted: { [weak self] id, status in self?.posted(id, status) }) {
                state.withLock { $0.balancedPosts += 1 }
            }
        }
        return true
    }

    private func posted(_ id: Int64, _ status: Int?) {
        state.withLock { state in
            state.webhookPosts.append((id, status))
            if let status, (200..<300).contains(status) {
                state.pendingUpdates.removeAll { Self.updateID(of: $0) == id }
                state.webhookRetryAt[id] = nil
            } else {
                state.webhookRetryAt[id] = .now + .milliseconds(200)
            }
        }
    }

    /// Puts a load balancer in front of the webhook: posts go to `urls`' hosts and ports in turn
    /// (the webhook's path stays), as to replicas behind one public address.
    public func balanceWebhook(across urls: [URL]) {
        state.withLock { $0.balancedTo = urls }
    }

    /// Posts `body` to a webhook as anyone could, with `secret` (nil: no header); the status. The
    /// blocking socket runs on a thread of its own, never on one of the few that every task shares.
    public static func postToWebhook(_ body: String, url: URL, secret: String?) async -> Int? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(
                    returning: WebhookPusher.send(body, to: WebhookPusher.Target(url: url, secret: secret ?? "", maxConnections: 1), withSecret: secret != nil))
            }
        }
    }

    /// Updates wait at Telegram instead of being posted, until `holdPushes(false)`.
    public func holdPushes(_ hold: Bool) {
        state.withLock { $0.pushesHeld = hold }
    }

    /// Every webhook post so far, with its status (nil: no answer).
    public var webhookPosts: [(updateID: Int64, status: Int?)] { state.withLock { $0.webhookPosts } }

    /// The webhook URL set, if any.
    public var webhookURL: URL? { state.withLock { $0.webhook?.url } }

    /// For each setWebhook (valid ones), whether something listened at its URL at that moment.
    public var webhookListening: [Bool] { state.withLock { $0.webhookListening } }

    private static func chatID(of update: String) -> Int64 {
        guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(update.utf8)) else { return 0 }
        for key in ["message", "edited_message", "channel_post", "callback_query"] {
            guard case .object(var inner)? = object[key] else { continue }
            if key == "callback_query", case .object(let message)? = inner["message"] { inner = message }
            if case .object(let chat)? = inner["chat"], let id = chat["id"]?.int64 { return id }
        }
        return 0
    }

    /// Wakes waiting long polls. Taking the lock means a poll between its check and its wait cannot
    /// miss the wake-up, so updates reach the bot at once, as with Telegram.
    private func wakePolls() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    private static func updateID(of json: String) -> Int64 {
        let digits = json.dropFirst("{\"update_id\":".count).prefix { $0.isNumber || $0 == "-" }
        return Int64(digits) ?? 0
    }

    /// Checks the chat exists and may be written to, then spends flood budget. Returns a failure or nil.
    private func admit(_ chatID: Int64, countsAgainstFlood: Bool) -> ScriptedResponse? {
        let (type, blocked, migratedTo) = state.withLock { ($0.chats[chatID], $0.blocked.contains(chatID), $0.migrated[chatID]) }
        if let migratedTo {
            return Self.failure(400, "Bad Request: group chat was upgraded to a supergroup chat", parameters: "{\"migrate_to_chat_id\":\(migratedTo)}")
        }
        guard let type else { return Self.failure(400, "Bad Request: chat not found") }
        if blocked {
            return Self.failure(403, type == "private" ? "Forbidden: bot was blocked by the user" : "Forbidden: bot was kicked from the group chat")
        }
        guard countsAgainstFlood else { return nil }
        let now = ContinuousClock.now
        let scale = limits.scale
        let wait: Double? = state.withLock { state in
            func refill(_ bucket: Bucket?, burst: Double, rate: Double) -> Bucket {
                guard var bucket else { return Bucket(tokens: burst, updated: now) }
                let elapsed = Double((now - bucket.updated).components.attoseconds) / 1e18 + Double((now - bucket.updated).components.seconds)
                bucket.tokens = min(burst, bucket.tokens + elapsed * rate)
                bucket.updated = now
                return bucket
            }
            var chat = refill(state.chatBuckets[chatID], burst: limits.perChatBurst, rate: limits.perChatPerSecond * scale)
            var global = refill(state.globalBucket, burst: limits.globalBurst, rate: limits.globalPerSecond * scale)
            var window = state.groupWindows[chatID] ?? []
            let minute = Duration.seconds(60 / scale)
            window.removeAll { now - $0 >= minute }
            defer {
                state.chatBuckets[chatID] = chat
                state.globalBucket = global
                state.groupWindows[chatID] = window
            }
            if chat.tokens < 1 {
                state.floodRejections.append("chat \(chatID)")
                return (1 - chat.tokens) / (limits.perChatPerSecond * scale)
            }
            if global.tokens < 1 {
                state.floodRejections.append("global")
                return (1 - global.tokens) / (limits.globalPerSecond * scale)
            }
            if type != "private", window.count >= limits.perGroupPerMinute {
                state.floodRejections.append("group \(chatID)")
                let oldest = window[0]
                return Double((minute - (now - oldest)).components.seconds) + 1
            }
            chat.tokens -= 1
            global.tokens -= 1
            if type != "private" { window.append(now) }
            return nil
        }
        if let wait {
            let seconds = max(1, Int(wait.rounded(.up)))
            return Self.failure(429, "Too Many Requests: retry after \(seconds)", parameters: "{\"retry_after\":\(seconds)}", headers: ["Retry-After": String(seconds)])
        }
        return nil
    }

    /// Validates text and entities exactly as Telegram counts them: code points for the length,
    /// UTF-16 code units for entity bounds. Returns the entities, or the error description.
    private static func validate(text: String, entities: JSONValue?) -> Result<[Entity], ValidationFailure> {
        var entityList: [Entity] = []
        if let entities {
            guard let data = try? JSONEncoder().encode(entities), let decoded = try? JSONDecoder().decode([Entity].self, from: data) else {
                return .failure(ValidationFailure("Bad Request: can't parse entities: entities must be an array of MessageEntity"))
            }
            entityList = decoded
        }
        if text.unicodeScalars.count > 4096 { return .failure(ValidationFailure("Bad Request: message is too long")) }
        let units = text.utf16.count
        let known: Set<String> = [
            "bold", "italic", "underline", "strikethrough", "spoiler", "code", "pre", "text_link", "blockquote",
            "expandable_blockquote", "url", "mention", "hashtag", "bot_command", "email",
        ]
        for entity in entityList {
            guard known.contains(entity.type) else {
                return .failure(ValidationFailure("Bad Request: can't parse entities: unsupported entity type \"\(entity.type)\""))
            }
            guard entity.offset >= 0, entity.length > 0, entity.offset + entity.length <= units else {
                return .failure(ValidationFailure("Bad Request: can't parse entities: entity beyond the end of the text at UTF-16 offset \(entity.offset)"))
            }
            if entity.type == "text_link", entity.url?.isEmpty ?? true {
                return .failure(ValidationFailure("Bad Request: can't parse entities: text_link without url"))
            }
        }
        return .success(entityList)
    }

    struct ValidationFailure: Error {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private func send(_ parameters: [String: JSONValue], edit: Bool) -> ScriptedResponse {
        guard let chatID = parameters["chat_id"]?.int64 else { return Self.failure(400, "Bad Request: chat_id is empty") }
        guard case .string(let text)? = parameters["text"] else { return Self.failure(400, "Bad Request: message text is empty") }
        if parameters["parse_mode"] != nil { return Self.failure(400, "Bad Request: this bot must not use parse_mode") }
        if text.isEmpty || text.allSatisfy(\.isWhitespace) { return Self.failure(400, "Bad Request: message text is empty") }
        let entities: [Entity]
        switch Self.validate(text: text, entities: parameters["entities"]) {
        case .success(let valid): entities = valid
        case .failure(let problem): return Self.failure(400, problem.description)
        }
        if let failure = admit(chatID, countsAgainstFlood: true) { return failure }
        if edit {
            guard let messageID = parameters["message_id"]?.int else { return Self.failure(400, "Bad Request: message to edit not found") }
            return state.withLock { state in
                guard var list = state.messages[chatID], let index = list.firstIndex(where: { $0.messageID == messageID }) else {
                    return Self.failure(400, "Bad Request: message to edit not found")
                }
                if list[index].text == text && list[index].entities == entities {
                    return Self.failure(
                        400,
                        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"
                    )
                }
                list[index].text = text
                list[index].entities = entities
                list[index].edits += 1
                state.messages[chatID] = list
                return Self.ok(Self.messageJSON(list[index], chatType: state.chats[chatID] ?? "private", bot: bot))
            }
        }
        var replyTo: Int?
        if case .object(let reply)? = parameters["reply_parameters"] { replyTo = reply["message_id"]?.int }
        return state.withLock { state in
            let message = SentMessage(chatID: chatID, messageID: state.nextMessageID, text: text, entities: entities, replyTo: replyTo, edits: 0)
            state.nextMessageID += 1
            state.messages[chatID, default: []].append(message)
            state.drafts[chatID] = nil  // a real message replaces the draft
            return Self.ok(Self.messageJSON(message, chatType: state.chats[chatID] ?? "private", bot: bot))
        }
    }

    private func sendDraft(_ parameters: [String: JSONValue]) -> ScriptedResponse {
        guard let chatID = parameters["chat_id"]?.int64 else { return Self.failure(400, "Bad Request: chat_id is empty") }
        guard let draftID = parameters["draft_id"]?.int64, draftID != 0 else { return Self.failure(400, "Bad Request: draft_id must be non-zero") }
        let type = state.withLock { $0.chats[chatID] }
        guard type == "private" else { return Self.failure(400, "Bad Request: message drafts can be sent only to private chats") }
        var text = ""
        if case .string(let given)? = parameters["text"] { text = given }
        if case .failure(let problem) = Self.validate(text: text, entities: parameters["entities"]) {
            return Self.failure(400, problem.description)
        }
        if let failure = admit(chatID, countsAgainstFlood: true) { return failure }
        state.withLock { $0.drafts[chatID, default: [:]][draftID] = text }
        return Self.ok("true")
    }

    private func chatAction(_ parameters: [String: JSONValue]) -> ScriptedResponse {
        guard let chatID = parameters["chat_id"]?.int64 else { return Self.failure(400, "Bad Request: chat_id is empty") }
        if let failure = admit(chatID, countsAgainstFlood: false) { return failure }
        return Self.ok("true")
    }

    private func deleteMessage(_ parameters: [String: JSONValue]) -> ScriptedResponse {
        guard let chatID = parameters["chat_id"]?.int64, let messageID = parameters["message_id"]?.int else {
            return Self.failure(400, "Bad Request: message to delete not found")
        }
        return state.withLock { state in
            guard let index = state.messages[chatID]?.firstIndex(where: { $0.messageID == messageID }) else {
                return Self.failure(400, "Bad Request: message to delete not found")
            }
            state.messages[chatID]?.remove(at: index)
            return Self.ok("true")
        }
    }

    private static func messageJSON(_ message: SentMessage, chatType: String, bot: (id: Int64, username: String)) -> String {
        "{\"message_id\":\(message.messageID),\"date\":1700000000,\"from\":{\"id\":\(bot.id),\"is_bot\":true,\"first_name\":\"Assistant\",\"username\":\"\(bot.username)\"},\"chat\":{\"id\":\(message.chatID),\"type\":\"\(chatType)\"},\"text\":\(FakeOpenAIServer.quoted(message.text))}"
    }

    static func ok(_ result: String) -> ScriptedResponse {
        .json(200, "{\"ok\":true,\"result\":\(result)}")
    }

    static func failure(_ status: Int, _ description: String, parameters: String? = nil, headers: [String: String] = [:]) -> ScriptedResponse {
        let extra = parameters.map { ",\"parameters\":\($0)" } ?? ""
        return .json(status, "{\"ok\":false,\"error_code\":\(status),\"description\":\(FakeOpenAIServer.quoted(description))\(extra)}", headers: headers)
    }
}

/// Any JSON value, for recording what a client sent.
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public var int: Int? { if case .number(let value) = self { Int(exactly: value) } else { nil } }
    public var int64: Int64? { if case .number(let value) = self { Int64(exactly: value) } else { nil } }
    public var string: String? { if case .string(let value) = self { value } else { nil } }
    public var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
}
