import GRDB

/// A row of the update ledger as it is read back.
struct LedgerRecord: Decodable, FetchableRecord, TableRecord {
    static let databaseTableName = "telegram_update"

    enum Columns {
        static let updateID = Column(CodingKeys.updateID)
        static let status = Column(CodingKeys.status)
    }

    var updateID: Int64
    var chatID: Int64?
    var payload: String
    var status: UpdateStatus
    var reply: String?
    var replyPartsSent: Int
    var streamMessageID: Int?
    var streamPart: Int?

    enum CodingKeys: String, CodingKey {
        case payload, status, reply
        case updateID = "update_id"
        case chatID = "chat_id"
        case replyPartsSent = "reply_parts_sent"
        case streamMessageID = "stream_message_id"
        case streamPart = "stream_part"
    }

    var stored: StoredUpdate {
        StoredUpdate(
            update: UpdateRow(id: updateID, chatID: chatID, payload: payload), status: status,
            pendingReply: reply.map { reply in
                PendingReply(
                    payload: reply, partsSent: replyPartsSent,
                    streamMessage: streamMessageID.flatMap { id in streamPart.map { (id, $0) } })
            })
    }
}
