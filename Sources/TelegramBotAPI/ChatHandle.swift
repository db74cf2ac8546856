import Synchronization

/// A chat as the sender addresses it. Shared by reference because a group upgraded to a supergroup
/// changes its id in the middle of a reply: the sender moves the handle, and whoever owns the
/// chat's records follows it (`movedFrom`).
public final class ChatHandle: Sendable {
    private let current: Mutex<Int64>
    public let isGroup: Bool
    public let threadID: Int?

    public init(id: Int64, isGroup: Bool, threadID: Int? = nil) {
        current = Mutex(id)
        self.isGroup = isGroup
        self.threadID = threadID
    }

    public var id: Int64 { current.withLock { $0 } }
    func move(to id: Int64) { current.withLock { $0 = id } }
}
