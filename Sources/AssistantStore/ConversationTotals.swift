/// Totals over many conversations.
public struct ConversationTotals: Sendable, Equatable {
    public var conversations: Int
    public var requests: Int
    public var promptTokens: Int
    public var completionTokens: Int
    public var costUSD: Double
    public var images: Int = 0
    public var audioSeconds: Int = 0
}
