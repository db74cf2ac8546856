import Foundation
import GRDB

/// One conversation: a terminal session or (later) a Telegram chat, with totals that survive restarts.
public struct ConversationRecord: Codable, Sendable, Equatable, FetchableRecord, TableRecord {
    public static let databaseTableName = "conversation"

    public var id: Int64
    /// `terminal` or `telegram`.
    public var kind: String
    /// The Telegram chat id; `nil` for terminal conversations.
    public var externalID: Int64?
    /// A model chosen with `/model NAME`; `nil` means the configured model.
    public var model: String?
    /// A running summary of the turns that fell out of the window.
    public var summary: String?
    /// The last message folded into `summary`.
    public var summaryThroughMessageID: Int64
    /// Requests are built from messages with this id or later; moved forward in blocks (see `HistoryWindow`).
    public var windowStartMessageID: Int64
    public var requests: Int
    public var failures: Int
    public var promptTokens: Int
    public var completionTokens: Int
    /// True once any counted tokens were estimated rather than reported.
    public var usageEstimated: Bool
    public var costUSD: Double
    public var lastLatencyMs: Int?
    public var lastTTFTMs: Int?
    /// Images and seconds of audio users sent (they stay when the history is cleared).
    public var images: Int
    public var audioSeconds: Int
    var createdAt: Date
    var updatedAt: Date

    /// A conversation as another backend reads it.
    public init(
        id: Int64, kind: String, externalID: Int64?, model: String?, summary: String?, summaryThroughMessageID: Int64,
        windowStartMessageID: Int64, requests: Int, failures: Int, promptTokens: Int, completionTokens: Int, usageEstimated: Bool,
        costUSD: Double, lastLatencyMs: Int?, lastTTFTMs: Int?, images: Int, audioSeconds: Int, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.kind = kind
        self.externalID = externalID
        self.model = model
        self.summary = summary
        self.summaryThroughMessageID = summaryThroughMessageID
        self.windowStartMessageID = windowStartMessageID
        self.requests = requests
        self.failures = failures
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.usageEstimated = usageEstimated
        self.costUSD = costUSD
        self.lastLatencyMs = lastLatencyMs
        self.lastTTFTMs = lastTTFTMs
        self.images = images
        self.audioSeconds = audioSeconds
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The columns, for queries.
    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let kind = Column(CodingKeys.kind)
        public static let externalID = Column(CodingKeys.externalID)
        static let updatedAt = Column(CodingKeys.updatedAt)
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, model, summary, requests, failures, images
        case audioSeconds = "audio_seconds"
        case externalID = "external_id"
        case summaryThroughMessageID = "summary_through_message_id"
        case windowStartMessageID = "window_start_message_id"
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case usageEstimated = "usage_estimated"
        case costUSD = "cost_usd"
        case lastLatencyMs = "last_latency_ms"
        case lastTTFTMs = "last_ttft_ms"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

extension ConversationRecord {
    /// Read column by column: the Codable path costs a decoder per row, on every request.
    public init(row: Row) throws {
        id = row[CodingKeys.id.rawValue]
        kind = row[CodingKeys.kind.rawValue]
        externalID = row[CodingKeys.externalID.rawValue]
        model = row[CodingKeys.model.rawValue]
        summary = row[CodingKeys.summary.rawValue]
        summaryThroughMessageID = row[CodingKeys.summaryThroughMessageID.rawValue]
        windowStartMessageID = row[CodingKeys.windowStartMessageID.rawValue]
        requests = row[CodingKeys.requests.rawValue]
        failures = row[CodingKeys.failures.rawValue]
        promptTokens = row[CodingKeys.promptTokens.rawValue]
        completionTokens = row[CodingKeys.completionTokens.rawValue]
        usageEstimated = row[CodingKeys.usageEstimated.rawValue]
        costUSD = row[CodingKeys.costUSD.rawValue]
        lastLatencyMs = row[CodingKeys.lastLatencyMs.rawValue]
        lastTTFTMs = row[CodingKeys.lastTTFTMs.rawValue]
        images = row[CodingKeys.images.rawValue]
        audioSeconds = row[CodingKeys.audioSeconds.rawValue]
        createdAt = row[CodingKeys.createdAt.rawValue]
        updatedAt = row[CodingKeys.updatedAt.rawValue]
    }
}
