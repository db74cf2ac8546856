/// Totals over many conversations.
public struct ConversationTotals: Sendable, Equatable {
    public var conversations: Int
    public var requests: Int
    public var promptTokens: Int
    public var completionTokens: Int
    public var costUSD: Double
    public var images: Int = 0
    public var audioSeconds: Int = 0

    public init(
        conversations: Int, requests: Int, promptTokens: Int, completionTokens: Int, costUSD: Double, images: Int = 0, audioSeconds: Int = 0
    ) {
        self.conversations = conversations
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.costUSD = costUSD
        self.images = images
        self.audioSeconds = audioSeconds
    }
}
