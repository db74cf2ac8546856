/// An update that was received but not yet handled, to be resumed after a restart.
public struct StoredUpdate: Sendable, Equatable {
    public var update: UpdateRow
    public var status: UpdateStatus
    /// Set when the answer was complete and only its delivery was cut off.
    public var pendingReply: PendingReply?

    public init(update: UpdateRow, status: UpdateStatus, pendingReply: PendingReply?) {
        self.update = update
        self.status = status
        self.pendingReply = pendingReply
    }
}
