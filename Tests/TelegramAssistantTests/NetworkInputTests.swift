import Foundation
import Testing
import TestSupport

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import Support
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd
@testable import TerminalFrontEnd

/// Numbers and headers from the network can be anything; deadlines must measure what they name.
@Suite(.timeLimit(.minutes(2))) struct NetworkInputTests {
    @Test(arguments: ["inf", "1e300", "-inf", "nan", "9223372036854775807", "1e19", "99999999999999999999", "-5", "Infinity"])
    func anAbsurdRetryAfterNeverTrapsAndIsNeverWaitedOut(value: String) {
        let wait = LLMError.retryAfter(["retry-after": value])
        if let wait { #expect(wait >= .zero && wait <= .seconds(86_400), "\(value) → \(wait)") }
        // Whatever it parsed to, the policy never waits longer than its cap.
        let delay = RetryPolicy(random: { 0.5 }).delay(after: .rateLimited(retryAfter: wait), attempt: 1)
        if let delay { #expect(delay <= .seconds(20)) }
    }

    @Test func anAbsurdRetryAfterFromTheProviderEndsAsARateLimitNotACrash() async throws {
        let harness = try Harness()
        harness.server.enqueue(.rateLimitedHeader("1e300"), .rateLimitedHeader("inf"), .rateLimitedHeader("nan"))
        var failure: CompletionFailure?
        do {
            _ = try await harness.runner.complete(harness.request("hi")) { _ in }
        } catch let error as CompletionFailure {
            failure = error
        }
        #expect(failure?.error.errorType == "rate_limited")
    }

    @Test(arguments: [Int.max, 1 << 62, -1, 0, 86_401])
    func anAbsurdTelegramRetryAfterIsClamped(seconds: Int) async {
        let error = TelegramError(status: 429, description: "Too Many Requests", parameters: .init(retry_after: seconds))
        guard case .rateLimited(let retryAfter) = error else {
            Issue.record("not a rate limit: \(error)")
            return
        }
        #expect((1...86_400).contains(retryAfter))
        // The scheduler can hold a chat for it without overflowing its clock arithmetic.
        let scheduler = SendScheduler(clock: RecordingClock())
        await scheduler.rateLimited(chat: 1, retryAfter: retryAfter)
        #expect(await scheduler.wait(chat: 1, isGroup: false) > .zero)
    }

    /// Random strings made of the characters number parsers trip on, many thousands of them.
    @Test func headerAndNumberParsersSurviveRandomInput() {
        var generator = SplitMix(seed: 0x5eed)
        let alphabet = Array("0123456789.eE+-infatyINFAYx :,\u{0}\u{661}\u{FF11}")
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...24, using: &generator)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            if let wait = LLMError.retryAfter(["retry-after": text]) {
                #expect(wait >= .zero && wait <= .seconds(86_400))
            }
            if let seconds = TelegramError.retryAfter(in: "Too Many Requests: retry after \(text)") {
                #expect((0...86_400).contains(seconds))
            }
        }
    }

    /// llama.cpp and reasoning models send their headers at once, then think. The first-byte
    /// deadline (not the idle one) covers that thinking, and nothing is retried.
    @Test func headersThenLongThinkingIsCoveredByTheFirstByteDeadline() async throws {
        let harness = try Harness(timeouts: LLMTimeouts(firstByte: .seconds(20), idle: .milliseconds(300), total: .seconds(30)))
        harness.server.enqueue(.thinkThenAnswer("Thought it through.", pause: .milliseconds(900)))
        let completion = try await harness.runner.complete(harness.request("think")) { _ in }
        #expect(completion.text == "Thought it through.")
        #expect(completion.attempts == 1)
        #expect(harness.server.chatRequests.count == 1)
    }

    /// Some servers send only part of `usage`; the answer is complete all the same.
    @Test func aPartialUsageObjectDoesNotInterruptACompleteAnswer() async throws {
        let harness = try Harness()
        let sse = """
            data: {"choices":[{"index":0,"delta":{"content":"All "},"finish_reason":null}]}

            data: {"choices":[{"index":0,"delta":{"content":"there."},"finish_reason":"stop"}]}

            data: {"choices":[],"usage":{"prompt_tokens":12}}

            data: {"choices":[],"usage":{"completion_tokens":"seven","total_tokens":null}}

            data: [DONE]


            """
        harness.server.enqueue(.rawSSE(sse, chunkSize: 9))
        let completion = try await harness.runner.complete(harness.request("q")) { _ in }
        #expect(completion.text == "All there.")
        #expect(completion.usage.promptTokens == 12)
        #expect(completion.usage.estimated, "a count the server did not give is estimated, and says so")
    }
}
