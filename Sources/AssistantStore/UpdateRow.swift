/// An update as the ledger keeps it: the front end's raw JSON, and the chat it belongs to.
public struct UpdateRow: Sendable, Equatable {
    public var id: Int64
    public var chatID: Int64?
    /// The update as the front end encoded it (deterministically: the same update, the same text).
    public var payload: String

    public init(id: Int64, chatID: Int64?, payload: String) {
        self.id = id
        self.chatID = chatID
        self.payload = payload
    }
}
