/// Draft ids. Each reply streams under its own id, derived from its update's id, and a long answer's
/// later parts under the ids that follow; the stop button sends back the id of the part it is on.
enum DraftID {
    /// Parts of one reply that a stop button can refer to.
    static let partsPerReply: Int64 = 64

    /// The draft id of the first part of the reply to `updateID` (never 0, which Telegram refuses).
    static func first(forUpdate updateID: Int64) -> Int64 { max(1, updateID) }

    /// The draft id of part `index` of the reply whose first part is `first`.
    static func part(_ index: Int, of first: Int64) -> Int64 { first &+ Int64(index) }

    /// True when `draft` is one of the parts of the reply whose first part is `first`.
    static func belongs(_ draft: Int64, toReply first: Int64) -> Bool { (0..<partsPerReply).contains(draft &- first) }
}
