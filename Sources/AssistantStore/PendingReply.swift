/// A final answer saved for delivery: what to send, how far sending got, and the message that was
/// being edited while it streamed (a group's answer), if any.
public struct PendingReply: Sendable, Equatable {
    /// The final text, as the front end encoded it.
    public var payload: String
    /// Parts already delivered.
    public var partsSent: Int
    public var streamMessage: (messageID: Int, part: Int)?

    public init(payload: String, partsSent: Int, streamMessage: (messageID: Int, part: Int)?) {
        self.payload = payload
        self.partsSent = partsSent
        self.streamMessage = streamMessage
    }

    public static func == (lhs: PendingReply, rhs: PendingReply) -> Bool {
        lhs.payload == rhs.payload && lhs.partsSent == rhs.partsSent
            && lhs.streamMessage?.messageID == rhs.streamMessage?.messageID && lhs.streamMessage?.part == rhs.streamMessage?.part
    }
}
