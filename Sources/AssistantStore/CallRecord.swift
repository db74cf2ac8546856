/// Everything a model call changed, written in one transaction so a crash never leaves half of it.
public struct CallRecord: Sendable {
    /// Token counts of a call, marked when they were estimated rather than reported.
    public struct Tokens: Sendable, Equatable {
        public var prompt: Int
        public var completion: Int
        public var estimated: Bool

        public init(prompt: Int, completion: Int, estimated: Bool) {
            self.prompt = prompt
            self.completion = completion
            self.estimated = estimated
        }
    }

    /// The user turn the call answered.
    public var userMessageID: Int64
    /// The answer to save: complete, or partial when the stream broke or was stopped.
    public var reply: (text: String, status: MessageRecord.Status, model: String)?
    public var tokens: Tokens?
    public var costUSD: Double
    public var latencyMs: Int?
    public var ttftMs: Int?
    public var failed: Bool
    /// A failed call whose user turn stays in the history all the same (its images are withheld).
    public var keepsTurn: Bool

    public init(
        userMessageID: Int64, reply: (text: String, status: MessageRecord.Status, model: String)?, tokens: Tokens?,
        costUSD: Double, latencyMs: Int? = nil, ttftMs: Int? = nil, failed: Bool, keepsTurn: Bool = false
    ) {
        self.keepsTurn = keepsTurn
        self.userMessageID = userMessageID
        self.reply = reply
        self.tokens = tokens
        self.costUSD = costUSD
        self.latencyMs = latencyMs
        self.ttftMs = ttftMs
        self.failed = failed
    }
}
