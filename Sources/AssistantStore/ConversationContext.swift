/// A conversation with the turns its next request may use.
public struct ConversationContext: Sendable {
    public var conversation: ConversationRecord
    public var turns: [MessageRecord]
    /// The attachments of those turns, by message id.
    public var attachments: [Int64: [Attachment]]

    public init(conversation: ConversationRecord, turns: [MessageRecord], attachments: [Int64: [Attachment]] = [:]) {
        self.conversation = conversation
        self.turns = turns
        self.attachments = attachments
    }
}
