import Foundation
import GRDB

/// One turn of a conversation.
public struct MessageRecord: Codable, Sendable, Equatable, FetchableRecord, TableRecord {
    public static let databaseTableName = "message"

    /// Who spoke. The same three words as the chat-completions roles, stored as text.
    public enum Role: String, Codable, Sendable {
        case system, user, assistant
    }

    /// How a turn ended. Failed turns are kept for the record but never sent to the model again.
    public enum Status: String, Codable, Sendable {
        case complete, partial, failed
    }

    public var id: Int64
    public var conversationID: Int64
    public var role: Role
    public var content: String
    public var status: Status
    /// For assistant turns: the model that wrote it.
    public var model: String?
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var usageEstimated: Bool
    var createdAt: Date
    var updatedAt: Date

    /// A turn as another backend reads it.
    public init(
        id: Int64, conversationID: Int64, role: Role, content: String, status: Status, model: String?, promptTokens: Int?,
        completionTokens: Int?, usageEstimated: Bool, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.conversationID = conversationID
        self.role = role
        self.content = content
        self.status = status
        self.model = model
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.usageEstimated = usageEstimated
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The columns, for queries.
    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let conversationID = Column(CodingKeys.conversationID)
        public static let status = Column(CodingKeys.status)
    }

    enum CodingKeys: String, CodingKey {
        case id, role, content, status, model
        case conversationID = "conversation_id"
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case usageEstimated = "usage_estimated"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

extension MessageRecord {
    /// Read column by column: the Codable path costs a decoder per row, for every turn of every request.
    public init(row: Row) throws {
        id = row[CodingKeys.id.rawValue]
        conversationID = row[CodingKeys.conversationID.rawValue]
        role = row[CodingKeys.role.rawValue]
        content = row[CodingKeys.content.rawValue]
        status = row[CodingKeys.status.rawValue]
        model = row[CodingKeys.model.rawValue]
        promptTokens = row[CodingKeys.promptTokens.rawValue]
        completionTokens = row[CodingKeys.completionTokens.rawValue]
        usageEstimated = row[CodingKeys.usageEstimated.rawValue]
        createdAt = row[CodingKeys.createdAt.rawValue]
        updatedAt = row[CodingKeys.updatedAt.rawValue]
    }
}

extension MessageRecord.Role: DatabaseValueConvertible {}
extension MessageRecord.Status: DatabaseValueConvertible {}
