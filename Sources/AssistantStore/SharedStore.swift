/// A database that several replicas share (PostgreSQL): which replicas are alive, and which one
/// answers each chat. A chat is leased to one live replica at a time, so its messages are answered
/// one at a time, in order, wherever they were received; a replica that stops its heartbeat (it
/// died, or lost the database) loses its chats to the others, which resume them as a restart does.
///
/// Liveness is the database's clock, so replicas on hosts whose clocks differ agree on it.
public protocol SharedStore: Store {
    /// Records that `replica` is alive for `timeout` more, joining if it is new; returns how many
    /// replicas are alive (itself included).
    func heartbeat(replica: String, timeout: Duration) async throws -> Int
    /// `replica` leaves: its heartbeat and its leases go, so the others take its chats at once.
    func leave(replica: String) async throws
    /// In one transaction: gives back the chats `replica` holds that have nothing open any more,
    /// then leases to it chats with open updates that no live replica holds, up to its fair share
    /// (the open chats divided among `replicas`), oldest first. Returns the chats it holds and
    /// their open updates, oldest first.
    func claimChats(replica: String, replicas: Int) async throws -> ChatClaim
    /// Whether `replica` holds the chat and is alive now: checked right before anything is shown,
    /// in case its lease lapsed (a stalled process) and another replica took the chat meanwhile.
    func holds(_ chatID: Int64, replica: String) async throws -> Bool
    /// Wakes its reader whenever any replica saves new updates (and now and then when it cannot
    /// tell); ends when the reading task is cancelled.
    func updatesSaved() -> AsyncStream<Void>
}

/// What a replica holds after a claim.
public struct ChatClaim: Sendable, Equatable {
    /// The chats leased to the replica (updates without a chat count as chat 0).
    public var chats: Set<Int64>
    /// Their open updates, oldest first.
    public var updates: [StoredUpdate]

    public init(chats: Set<Int64>, updates: [StoredUpdate]) {
        self.chats = chats
        self.updates = updates
    }
}
