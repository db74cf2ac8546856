import OpenAIClient

/// Chooses which turns of a conversation go into the next request.
///
/// The window starts at a stored message id and only moves forward, and then in blocks: when the
/// turns no longer fit `maxMessages` or the token budget, the oldest half of the window is dropped at
/// once. Between two such moves every request starts with the same messages, so providers' prompt
/// caches keep hitting. The window never starts with an assistant turn.
public struct HistoryWindow: Sendable {
    /// A turn as the planner sees it.
    struct Turn: Sendable, Equatable {
        public var id: Int64
        public var role: OpenAI.Role
        public var content: String
        public var images: [OpenAI.Image]

        public init(id: Int64, role: OpenAI.Role, content: String, images: [OpenAI.Image] = []) {
            self.id = id
            self.role = role
            self.content = content
            self.images = images
        }

        /// Its share of the budget: text, framing, and each image at its documented estimate.
        var tokens: Int {
            TokenEstimator.estimate(content) + TokenEstimator.perMessageOverhead + images.reduce(0) { $0 + TokenEstimator.estimate($1) }
        }
    }

    /// The result: where the window starts now and the turns to send.
    struct Plan: Sendable, Equatable {
        var windowStartID: Int64
        public var turns: [Turn]
    }

    var maxMessages: Int
    /// Tokens available for the system messages and the turns together.
    var tokenBudget: Int

    public init(maxMessages: Int, tokenBudget: Int) {
        self.maxMessages = maxMessages
        self.tokenBudget = tokenBudget
    }

    /// Plans the next request from the turns at or after `windowStartID` (oldest first, failed turns
    /// already left out). `dropExtraBlock` drops one more half-window: the retry after the provider
    /// said the context was too long. Returns `nil` when even the newest turn alone does not fit.
    func plan(system: [OpenAI.Message], turns all: [Turn], windowStartID: Int64, dropExtraBlock: Bool = false) -> Plan? {
        let systemTokens = TokenEstimator.estimate(system)
        var turns = all.filter { $0.id >= windowStartID }
        var tokens = turns.map(\.tokens)
        var total = tokens.reduce(systemTokens, +)

        func dropFirst(_ count: Int) {
            total -= tokens.prefix(count).reduce(0, +)
            turns.removeFirst(count)
            tokens.removeFirst(count)
        }
        /// A window must open with the user speaking.
        func dropLeadingAssistantTurns() {
            var leading = 0
            while leading < turns.count - 1, turns[leading].role == .assistant { leading += 1 }
            if leading > 0 { dropFirst(leading) }
        }
        func dropBlock() {
            dropFirst(max(1, turns.count / 2))
            dropLeadingAssistantTurns()
        }

        dropLeadingAssistantTurns()
        if dropExtraBlock, turns.count > 1 { dropBlock() }
        while turns.count > 1, turns.count > maxMessages || total > tokenBudget {
            dropBlock()
        }
        guard let first = turns.first, total <= tokenBudget else { return nil }
        return Plan(windowStartID: first.id, turns: turns)
    }
}
