import AssistantStore
import Logging

/// The commands both front ends share (`/help`, `/clear`, `/stats`, `/model`): one handler, with
/// each front end's wording and policy.
public struct CommandHandler: Sendable {
    /// What differs between front ends in what the commands say.
    public struct Wording: Sendable {
        /// The answer to `/help` (and `/start`).
        public var help: String
        /// What a conversation is called here ("chat", "conversation").
        public var noun: String
        /// The answer to `/clear`.
        public var cleared: String

        public init(help: String, noun: String, cleared: String) {
            self.help = help
            self.noun = noun
            self.cleared = cleared
        }
    }

    /// Who is asking, and what they may do.
    public struct Permissions: Sendable {
        /// Models `/model NAME` may choose; nil: any.
        public var allowedModels: [String]?
        /// `/model NAME` may switch (in a group, only the bot's admins may).
        public var maySwitchModel: Bool
        /// `/stats` adds the totals over every conversation of `kind` (an admin in a private chat).
        public var totalsOfKind: String?

        public init(allowedModels: [String]?, maySwitchModel: Bool = true, totalsOfKind: String? = nil) {
            self.allowedModels = allowedModels
            self.maySwitchModel = maySwitchModel
            self.totalsOfKind = totalsOfKind
        }
    }

    /// A command every front end understands.
    public struct Entry: Sendable {
        public let name: String
        /// What it does, for help texts.
        public let summary: String
        /// A few words, for menus (Telegram's command list).
        public let menu: String
    }

    /// The shared commands, in the order help lists them; `noun` is what the front end calls a
    /// conversation.
    public static func entries(noun: String) -> [Entry] {
        [
            Entry(name: "help", summary: "this help", menu: "Commands"),
            Entry(name: "clear", summary: "forget this \(noun)'s history", menu: "Forget this \(noun)'s history"),
            Entry(name: "stats", summary: "messages, tokens, cost and latency of this \(noun)", menu: "Messages, tokens and cost of this \(noun)"),
            Entry(
                name: "model", summary: "show the model; /model NAME switches this \(noun) to NAME",
                menu: "Show or switch the model"),
        ]
    }

    /// The shared commands as help lines (`/clear – forget this chat's history`), plus `extra`.
    public static func helpLines(noun: String, extra: [(name: String, summary: String)] = []) -> String {
        (entries(noun: noun).map { ($0.name, $0.summary) } + extra).map { "/\($0.0) – \($0.1)" }.joined(separator: "\n")
    }

    let engine: ConversationEngine
    let wording: Wording
    let logger: Logger

    public init(engine: ConversationEngine, wording: Wording, logger: Logger) {
        self.engine = engine
        self.wording = wording
        self.logger = logger
    }

    /// The answer to `command` in the conversation. Never throws: a storage failure is the notice
    /// every front end shows for it (and a log line).
    public func handle(_ command: Command, conversationID: Int64, permissions: Permissions) async -> String {
        do {
            switch command.name {
            case "start", "help":
                return wording.help
            case "clear":
                try await engine.clear(conversationID: conversationID)
                return wording.cleared
            case "stats":
                var text = try await engine.stats(conversationID: conversationID).text
                if let kind = permissions.totalsOfKind {
                    let totals = try await engine.totals(kind: kind)
                    text += "\n\nAll chats: \(totals.conversations) chats, \(totals.requests) requests, \(totals.promptTokens) prompt and \(totals.completionTokens) completion tokens, estimated cost $\(ConversationStats.sixDecimals(totals.costUSD)), \(totals.images) images, \(ConversationStats.minutes(totals.audioSeconds)) of voice"
                }
                return text
            case "model":
                let current = try await engine.model(for: conversationID)
                guard !command.argument.isEmpty else {
                    guard let allowed = permissions.allowedModels else { return "Model: \(current)" }
                    return "Model: \(current)\nAllowed: \(allowed.joined(separator: ", "))"
                }
                guard permissions.maySwitchModel else {
                    return "Only the bot's admins can change the model in a group."
                }
                if let allowed = permissions.allowedModels, !allowed.contains(command.argument) {
                    return "\(command.argument) is not allowed. Choose one of: \(allowed.joined(separator: ", "))"
                }
                try await engine.setModel(command.argument, conversationID: conversationID)
                return "Model switched to \(command.argument) for this \(wording.noun)."
            default:
                return "Unknown command /\(command.name). Try /help."
            }
        } catch {
            logger.error(
                "store_failed", metadata: ["conversation_id": .stringConvertible(conversationID), "error_type": "storage", "error": "\(error)"])
            return ReplyOutcome.storageFailed.notice ?? ""
        }
    }
}
