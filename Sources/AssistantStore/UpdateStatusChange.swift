/// A change of an update's status, to be committed together with other rows (the user's turn that
/// starts its answer) so that both happen or neither does, with one commit.
public struct UpdateStatusChange: Sendable, Equatable {
    public var updateID: Int64
    public var status: UpdateStatus

    public init(updateID: Int64, status: UpdateStatus) {
        self.updateID = updateID
        self.status = status
    }
}
