/// Where a conversation's history window starts after a turn is saved.
public enum WindowMove: Sendable, Equatable {
    /// At this stored message.
    case to(Int64)
    /// At the turn being saved.
    case toNewTurn
}
