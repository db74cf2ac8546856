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

@Suite(.timeLimit(.minutes(2))) struct CompletionRunnerTests {
    func failure(_ harness: Harness, _ request: CompletionRequest, deltas: DeltaCollector = DeltaCollector()) async -> CompletionFailure? {
        do {
            _ = try await harness.runner.complete(request) { deltas.append($0) }
            Issue.record("expected the call to fail")
            return nil
        } catch let failure as CompletionFailure {
            return failure
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func streamsAndReportsUsageFromTheServer() async throws {
        let harness = try Harness()
        harness.server.enqueue(.answer("Hello there, friend.", chunkSize: 4))
        let deltas = DeltaCollector()
        let completion = try await harness.runner.complete(harness.request("hi")) { deltas.append($0) }
        // One delta per hand-over: events that arrive together come as one piece.
        #expect((1...3).contains(deltas.all.count))
        #expect(deltas.text == "Hello there, friend.")
        #expect(completion.text == "Hello there, friend.")
        #expect(completion.usage.estimated == false)
        #expect(completion.usage.completionTokens == 3)
        #expect(completion.attempts == 1)
        #expect(completion.fallbackUsed == false)
        #expect(completion.model == "test-model")
        #expect(completion.finishReason == "stop")
        #expect(completion.timeToFirstToken != nil)
    }

    @Test func estimatesUsageWhenTheServerSendsNone() async throws {
        let harness = try Harness(.init(sendsUsage: false))
        let completion = try await harness.runner.complete(harness.request("a question of some length")) { _ in }
        #expect(completion.usage.estimated)
        #expect(completion.usage.promptTokens > 0)
        #expect(completion.usage.completionTokens > 0)
    }

    @Test func rateLimitHonoursRetryAfter() async throws {
        let harness = try Harness()
        harness.server.enqueue(.rateLimited(retryAfterSeconds: 2), .answer("ok"))
        let completion = try await harness.runner.complete(harness.request("hi")) { _ in }
        #expect(completion.text == "ok")
        #expect(completion.attempts == 2)
        #expect(harness.clock.sleeps == [.seconds(2)])
        #expect(harness.server.requests.count == 2)
    }

    @Test func rateLimitGivesUpAfterThreeAttempts() async throws {
        let harness = try Harness()
        harness.server.enqueue(.rateLimited(retryAfterSeconds: 1), .rateLimited(retryAfterSeconds: 1), .rateLimited(retryAfterSeconds: 1), .answer("too late"))
        let failure = try #require(await failure(harness, harness.request("hi")))
        #expect(failure.error == .rateLimited(retryAfter: .seconds(1)))
        #expect(failure.attempts == 3)
        #expect(harness.server.requests.count == 3)
        #expect(harness.clock.sleeps == [.seconds(1), .seconds(1)])
    }

    @Test func aRetryAfterLongerThanTheMaximumWaitIsNotWaitedFor() async throws {
        let harness = try Harness()
        harness.server.enqueue(.rateLimited(retryAfterSeconds: 3600))
        let failure = try #require(await failure(harness, harness.request("hi")))
        #expect(failure.error == .rateLimited(retryAfter: .seconds(3600)))
        #expect(harness.clock.sleeps.isEmpty)
        #expect(harness.server.requests.count == 1)
    }

    @Test func serverErrorsBackOffExponentiallyWithJitter() async throws {
        let harness = try Harness()
        harness.server.enqueue(.serverError(status: 500), .serverError(status: 503), .answer("finally"))
        let completion = try await harness.runner.complete(harness.request("hi")) { _ in }
        #expect(completion.text == "finally")
        #expect(completion.attempts == 3)
        // base 500 ms, jitter pinned at 0.5: 250 ms, then 500 ms.
        #expect(harness.clock.sleeps == [.milliseconds(250), .milliseconds(500)])
    }

    @Test(arguments: [
        (FakeOpenAIServer.Behavior.quotaExceeded, "quota_exceeded"),
        (.unauthorized, "unauthorized"),
        (.unauthorizedDetail, "unauthorized"),
        (.contextLengthExceeded, "context_length_exceeded"),
    ])
    func permanentFaultsAreNeverRetried(behavior: FakeOpenAIServer.Behavior, type: String) async throws {
        let harness = try Harness(overrides: ["OPENAI_FALLBACK_MODEL": "backup-model"])
        harness.server.enqueue(behavior, .answer("should not be asked for"))
        let failure = try #require(await failure(harness, harness.request("hi", model: "test-model")))
        #expect(failure.error.errorType == type)
        #expect(failure.attempts == 1)
        #expect(harness.server.requests.count == 1)
        #expect(harness.clock.sleeps.isEmpty)
    }

    @Test func aBadRequestIsNotRetried() async throws {
        let harness = try Harness()
        let request = CompletionRequest(messages: [], model: "test-model", fallbackModel: nil, temperature: 0.4, maxOutputTokens: 10)
        let failure = try #require(await failure(harness, request))
        guard case .badRequest = failure.error else {
            Issue.record("expected badRequest, got \(failure.error)")
            return
        }
        #expect(harness.server.requests.count == 1)
    }

    @Test func fallsBackOnceAfterThePrimaryIsExhausted() async throws {
        let harness = try Harness(overrides: ["OPENAI_FALLBACK_MODEL": "backup-model"])
        harness.server.enqueue(.serverError(status: 502), .serverError(status: 502), .serverError(status: 502), .answer("from the backup"))
        let completion = try await harness.runner.complete(harness.request("hi")) { _ in }
        #expect(completion.text == "from the backup")
        #expect(completion.model == "backup-model")
        #expect(completion.fallbackUsed)
        #expect(completion.attempts == 4)
        #expect(harness.server.chatRequests.map(\.model) == ["test-model", "test-model", "test-model", "backup-model"])
        #expect(ReplyOutcome.answered(completion).notice == "(answered by the fallback model backup-model)")
    }

    @Test func anUnknownPrimaryModelFallsBackAtOnce() async throws {
        let harness = try Harness(.init(models: ["backup-model"]), overrides: ["OPENAI_FALLBACK_MODEL": "backup-model"])
        let completion = try await harness.runner.complete(harness.request("hi", model: "gone-model")) { _ in }
        #expect(completion.model == "backup-model")
        #expect(completion.attempts == 2)
        #expect(harness.server.chatRequests.map(\.model) == ["gone-model", "backup-model"])
    }

    @Test func theFallbackIsTriedOnlyOnce() async throws {
        let harness = try Harness(overrides: ["OPENAI_FALLBACK_MODEL": "backup-model"])
        harness.server.enqueue(
            .serverError(status: 500), .serverError(status: 500), .serverError(status: 500), .serverError(status: 500),
            .answer("never"))
        let failure = try #require(await failure(harness, harness.request("hi")))
        #expect(failure.error == .server(status: 500))
        #expect(failure.fallbackUsed)
        #expect(failure.model == "backup-model")
        #expect(harness.server.requests.count == 4)
    }

    @Test func neverRetriesOnceTextHasReachedTheUser() async throws {
        let harness = try Harness(overrides: ["OPENAI_FALLBACK_MODEL": "backup-model"])
        harness.server.enqueue(.droppedStream(after: "The first half "), .answer("a second answer"))
        let deltas = DeltaCollector()
        let failure = try #require(await failure(harness, harness.request("hi"), deltas: deltas))
        #expect(failure.error == .interrupted(partial: "The first half ", cause: .streamEndedUnexpectedly))
        #expect(deltas.text == "The first half ")
        #expect(harness.server.requests.count == 1)
        #expect(failure.usage?.estimated == true)
    }

    @Test func faultsBeforeAnyTextAreRetried() async throws {
        let harness = try Harness()
        harness.server.enqueue(.emptyStream, .garbageLine(after: ""), .answer("third time lucky"))
        let completion = try await harness.runner.complete(harness.request("hi")) { _ in }
        #expect(completion.text == "third time lucky")
        #expect(completion.attempts == 3)
    }

    @Test func switchesToMaxCompletionTokensWhenTheServerAsks() async throws {
        let harness = try Harness(.init(rejectsMaxTokens: true))
        let completion = try await harness.runner.complete(harness.request("hi")) { _ in }
        #expect(completion.text == "Echo: hi")
        let requests = harness.server.chatRequests
        #expect(requests.count == 2)
        #expect(requests[0].max_tokens == 100)
        #expect(requests[1].max_tokens == nil)
        #expect(requests[1].max_completion_tokens == 100)
        // Remembered: the next call asks the right way at once.
        _ = try await harness.runner.complete(harness.request("again")) { _ in }
        #expect(harness.server.chatRequests.count == 3)
        #expect(harness.server.chatRequests[2].max_completion_tokens == 100)
    }
}

@Suite(.timeLimit(.minutes(2))) struct DeadlineTests {
    func run(_ behavior: FakeOpenAIServer.Behavior, timeouts: LLMTimeouts) async throws -> (CompletionFailure?, Harness) {
        let harness = try Harness(timeouts: timeouts)
        harness.server.enqueue(behavior, behavior, behavior)
        do {
            _ = try await harness.runner.complete(harness.request("hi")) { _ in }
            return (nil, harness)
        } catch let failure as CompletionFailure {
            return (failure, harness)
        }
    }

    @Test func aServerThatNeverAnswersHitsTheFirstByteTimeout() async throws {
        let (failure, harness) = try await run(.stallBeforeHeaders, timeouts: .init(firstByte: .milliseconds(200), idle: .seconds(30), total: .seconds(30)))
        #expect(failure?.error == .timeout(.firstByte))
        #expect(failure?.attempts == 3)  // a first-byte timeout is retried like a connection fault
        #expect(harness.clock.sleeps.count == 2)
    }

    @Test func aStreamThatStallsHitsTheIdleTimeoutAndKeepsThePartialAnswer() async throws {
        let (failure, harness) = try await run(.stall(after: "Thinking about "), timeouts: .init(firstByte: .seconds(30), idle: .milliseconds(200), total: .seconds(30)))
        #expect(failure?.error == .interrupted(partial: "Thinking about ", cause: .timeout(.idle)))
        #expect(harness.server.requests.count == 1)
    }

    @Test func aSlowButSteadyStreamHitsTheTotalDeadline() async throws {
        let slow = FakeOpenAIServer.Behavior.answer(String(repeating: "word ", count: 100), chunkSize: 400, pause: .milliseconds(30))
        let (failure, harness) = try await run(slow, timeouts: .init(firstByte: .seconds(5), idle: .seconds(5), total: .milliseconds(300)))
        #expect(harness.server.requests.count == 1)
        // Usually some text has arrived by then (interrupted); on a very slow machine maybe none.
        switch failure?.error {
        case .interrupted(let partial, .timeout(.total))?: #expect(!partial.isEmpty)
        case .timeout(.total)?: break
        default: Issue.record("expected the total deadline, got \(String(describing: failure))")
        }
    }

    @Test func aTotalTimeoutBeforeAnyTextIsNotRetriedOnTheSameModel() async throws {
        let slowStart = FakeOpenAIServer.Behavior.answer("late", chunkSize: 1, pause: .milliseconds(100))
        let (failure, harness) = try await run(slowStart, timeouts: .init(firstByte: .seconds(5), idle: .seconds(5), total: .milliseconds(300)))
        #expect(failure?.error == .timeout(.total))
        #expect(harness.server.requests.count == 1)
    }

    @Test func cancellingTheConsumerAbortsTheTransfer() async throws {
        let harness = try Harness()
        harness.server.enqueue(.stall(after: "Some text "))
        let deltas = DeltaCollector()
        let runner = harness.runner
        let request = harness.request("hi")
        let task = Task { try await runner.complete(request) { deltas.append($0) } }
        // Wait (by watching the collected text, not by a fixed sleep) until the text has arrived.
        try await waitUntil("the first text") { !deltas.text.isEmpty }
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        // The server sees the connection closed well before its own 30 s stall limit: the transfer
        // really stopped. (How fast is measured by the benchmark, not asserted here.)
        try await waitUntil("the server to see the disconnect", timeout: .seconds(20)) { harness.server.clientDisconnects > 0 }
        #expect(harness.server.clientDisconnects == 1)
    }
}
