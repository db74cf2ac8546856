/// A finished answer and how it came about.
public struct Completion: Sendable {
    public var text: String
    /// The model that answered: the fallback model when `fallbackUsed`.
    public var model: String
    public var fallbackUsed: Bool
    public var usage: TokenUsage
    /// HTTP attempts made, over both models.
    public var attempts: Int
    var finishReason: String?
    /// From the first request to the first piece of text.
    public var timeToFirstToken: Duration?
    public var latency: Duration
    /// The answer went past the runner's size cap and was cut there (the stream was closed).
    public var truncated = false
}
