import Support
import Synchronization

/// Makes one completion happen: streams it, retries transient faults before any text is shown,
/// falls back to the second model once, and enforces the deadlines.
///
/// Retrying after text reached the user would show it twice, so a fault after the first delta ends
/// the call as `LLMError.interrupted(partial:cause:)`.
public struct CompletionRunner: Sendable {
    let client: ChatCompletionsClient
    let policy: RetryPolicy
    let timeouts: LLMTimeouts
    /// Used for backoff waits; injected so tests do not sleep.
    let clock: any Clock<Duration>
    /// Measures latency and enforces the deadlines (a test's recording clock would end every
    /// deadline at once, so this one is separate).
    let deadlineClock: any Clock<Duration>
    /// The longest answer kept, in UTF-8 bytes: a model that loops (or a server that never stops)
    /// is cut here, with a note, instead of growing memory, the database and the chat without end.
    let maxAnswerBytes: Int
    /// Set once a server has said it wants `max_completion_tokens`, so later calls ask that way at once.
    private let prefersMaxCompletionTokens = SharedFlag()

    public init(
        client: ChatCompletionsClient, policy: RetryPolicy = RetryPolicy(), timeouts: LLMTimeouts, clock: any Clock<Duration>,
        deadlineClock: any Clock<Duration>, maxAnswerBytes: Int = 64 * 1024
    ) {
        self.deadlineClock = deadlineClock
        self.client = client
        self.policy = policy
        self.timeouts = timeouts
        self.clock = clock
        self.maxAnswerBytes = maxAnswerBytes
    }

    /// Streams the answer to `onDelta` as it arrives and returns it whole. Throws
    /// `CompletionFailure`, or `CancellationError` when the calling task is cancelled.
    public func complete(
        _ request: CompletionRequest, onDelta: @escaping @Sendable (String) async -> Void
    ) async throws -> Completion {
        let stopwatch = Stopwatch(deadlineClock)
        var models = [request.model]
        if let fallback = request.fallbackModel, fallback != request.model { models.append(fallback) }
        var attempts = 0
        var lastError = LLMError.connection("no attempt made")
        var switchedTokenParameter = false
        var lastIndex = 0

        for (index, model) in models.enumerated() {
            lastIndex = index
            let attemptsAllowed = index == 0 ? policy.maxAttempts : 1
            var attemptOnModel = 0
            while attemptOnModel < attemptsAllowed {
                attemptOnModel += 1
                attempts += 1
                let progress = AttemptProgress()
                do {
                    let outcome = try await attempt(request, model: model, stopwatch: stopwatch, progress: progress, onDelta: onDelta)
                    return Completion(
                        text: outcome.text, model: model, fallbackUsed: index > 0, usage: outcome.usage,
                        attempts: attempts, finishReason: outcome.finishReason,
                        timeToFirstToken: progress.snapshot.ttft, latency: stopwatch.elapsed, truncated: outcome.truncated)
                } catch let error as LLMError {
                    try Task.checkCancellation()  // a stop request is not a fault to retry or report
                    let seen = progress.snapshot
                    if !seen.text.isEmpty {
                        let partialUsage = TokenUsage(
                            promptTokens: TokenEstimator.estimate(request.messages),
                            completionTokens: TokenEstimator.estimate(seen.text), estimated: true)
                        throw CompletionFailure(
                            error: .interrupted(partial: seen.text, cause: error), model: model, attempts: attempts,
                            fallbackUsed: index > 0, timeToFirstToken: seen.ttft, usage: partialUsage)
                    }
                    if error == .maxTokensUnsupported, !switchedTokenParameter {
                        switchedTokenParameter = true
                        prefersMaxCompletionTokens.set()
                        attemptOnModel -= 1  // a protocol detail, not a fault: it costs no attempt
                        continue
                    }
                    lastError = error
                    guard let wait = policy.delay(after: error, attempt: attemptOnModel), attemptOnModel < attemptsAllowed else { break }
                    try await clock.sleep(for: wait)
                }
            }
            if !lastError.allowsFallback { break }
        }
        throw CompletionFailure(
            error: lastError, model: models[lastIndex], attempts: attempts, fallbackUsed: lastIndex > 0,
            timeToFirstToken: nil, usage: nil)
    }

    private struct AttemptOutcome: Sendable {
        var text: String
        var usage: TokenUsage
        var finishReason: String?
        var truncated: Bool
    }

    private func attempt(
        _ request: CompletionRequest, model: String, stopwatch: Stopwatch, progress: AttemptProgress,
        onDelta: @escaping @Sendable (String) async -> Void
    ) async throws -> AttemptOutcome {
        let body = OpenAI.ChatRequest(
            model: model, messages: request.messages, temperature: request.temperature,
            maxOutputTokens: request.maxOutputTokens, usesMaxCompletionTokens: prefersMaxCompletionTokens.isSet)
        let client = self.client
        let maxAnswerBytes = self.maxAnswerBytes
        return try await timeouts.enforce(clock: deadlineClock) { activity in
            let stream = try await client.stream(body, activity: activity, deliveryInterval: request.deliveryInterval)
            var text = ""
            var usage: OpenAI.Usage?
            var finishReason: String?
            var truncated = false
            events: for try await event in stream {
                switch event {
                case .delta(var piece):
                    if text.utf8.count + piece.utf8.count > maxAnswerBytes {
                        // Whole characters up to the cap; leaving the loop closes the stream.
                        var room = maxAnswerBytes - text.utf8.count
                        piece = String(piece.prefix { character in
                            room -= character.utf8.count
                            return room >= 0
                        })
                        truncated = true
                    }
                    text += piece
                    if !piece.isEmpty {
                        progress.append(piece, now: stopwatch.elapsed)
                        await onDelta(piece)
                    }
                    if truncated {
                        finishReason = "length_cap"
                        break events
                    }
                case .usage(let reported):
                    // Counts may come in pieces (or twice): keep the latest of each.
                    usage = OpenAI.Usage(
                        promptTokens: reported.promptTokens ?? usage?.promptTokens,
                        completionTokens: reported.completionTokens ?? usage?.completionTokens)
                case .finished(let reason):
                    finishReason = reason
                }
            }
            // What the server did not report is estimated, and the usage says so.
            let tokens = TokenUsage(
                promptTokens: usage?.promptTokens ?? TokenEstimator.estimate(request.messages),
                completionTokens: usage?.completionTokens ?? TokenEstimator.estimate(text),
                estimated: !(usage?.isComplete ?? false))
            return AttemptOutcome(text: text, usage: tokens, finishReason: finishReason, truncated: truncated)
        }
    }
}

/// What one attempt has shown the user so far; read after a failure to tell "nothing shown yet"
/// (safe to retry) from "interrupted".
final class AttemptProgress: Sendable {
    struct Snapshot: Sendable {
        var text = ""
        var ttft: Duration?
    }
    private let state = Mutex(Snapshot())

    func append(_ piece: String, now: Duration) {
        state.withLock {
            if $0.ttft == nil { $0.ttft = now }
            $0.text += piece
        }
    }

    var snapshot: Snapshot { state.withLock { $0 } }
}

/// A flag that can only be raised, shared by copies of a struct.
final class SharedFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
