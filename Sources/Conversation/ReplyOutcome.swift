import OpenAIClient

/// How an attempt to answer a message ended. Front ends render it; the engine has already saved it.
public enum ReplyOutcome: Sendable {
    /// A complete answer.
    case answered(Completion)
    /// The answer stopped early: the stream broke after some text (`reason`), or the task was
    /// cancelled by a stop request or shutdown (`reason == nil`, `partial` possibly empty). Any
    /// partial text is saved as a partial answer.
    case interrupted(partial: String, model: String, reason: LLMError?)
    /// Nothing was shown; the user's turn is marked failed and left out of later requests.
    case failed(LLMError)
    /// The message alone does not fit the model's context; nothing was sent.
    case messageTooLong(estimatedTokens: Int, budget: Int)
    /// The database could not be read or written; nothing was sent (the error is in the log).
    case storageFailed
    /// The front end's update was taken by someone else (another replica) before this answer
    /// began: nothing was saved or sent, and nothing is shown.
    case answeredElsewhere

    /// The marker shown after a partial answer.
    public static let interruptedMarker = "(interrupted)"

    /// The answer the user keeps: complete, or what was shown before it stopped; nil when the
    /// outcome has none (its notice stands alone).
    public var answer: String? {
        switch self {
        case .answered(let completion): completion.text
        case .interrupted(let partial, _, _): partial
        case .failed, .messageTooLong, .storageFailed, .answeredElsewhere: nil
        }
    }

    /// The text to show after (or instead of) the streamed answer, if any.
    public var notice: String? {
        switch self {
        case .answered(let completion):
            [
                completion.truncated ? "(the answer was cut here: it went past the bot's length limit)" : nil,
                completion.fallbackUsed ? "(answered by the fallback model \(completion.model))" : nil,
            ].compactMap { $0 }.joined(separator: "\n").nilIfEmpty
        case .interrupted(_, _, let reason):
            if let reason, case .interrupted(_, let cause) = reason {
                "\(Self.interruptedMarker) \(cause.userMessage)"
            } else {
                Self.interruptedMarker
            }
        case .failed(let error):
            error.userMessage
        case .messageTooLong(let tokens, let budget):
            "Your message is too long for this model (about \(tokens) tokens; at most \(budget) fit). Please shorten it."
        case .storageFailed:
            "Could not save the conversation, so nothing was sent. Please try again; if it persists, tell the bot's operator."
        case .answeredElsewhere:
            nil
        }
    }
}

extension String {
    /// nil for "", for optional chaining of texts that may be empty.
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
