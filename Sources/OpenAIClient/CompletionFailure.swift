/// A failed completion, with what is known about the attempts (for the log).
public struct CompletionFailure: Error, Sendable {
    public var error: LLMError
    public var model: String
    public var attempts: Int
    public var fallbackUsed: Bool
    public var timeToFirstToken: Duration?
    /// Usage of the text that did reach the user, estimated.
    public var usage: TokenUsage?
}
