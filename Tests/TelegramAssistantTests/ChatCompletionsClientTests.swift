import CurlHTTP
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

@Suite(.timeLimit(.minutes(2))) struct ChatCompletionsClientTests {
    func client(_ server: FakeOpenAIServer, key: String? = nil, appURL: String? = nil, appName: String? = nil) -> ChatCompletionsClient {
        ChatCompletionsClient(
            baseURL: server.baseURL, apiKey: Secret(key ?? server.settings.apiKey), appURL: appURL, appName: appName,
            http: HTTPClient(), transportTimeout: .seconds(30))
    }

    func body(_ text: String = "hi", model: String = "m") -> OpenAI.ChatRequest {
        OpenAI.ChatRequest(
            model: model, messages: [.init(role: .system, content: "sys"), .init(role: .user, content: text)],
            temperature: 0.4, maxOutputTokens: 50, usesMaxCompletionTokens: false)
    }

    /// Runs one call and returns its events, or the error it threw.
    func collect(_ client: ChatCompletionsClient, _ request: OpenAI.ChatRequest) async -> Result<[ChatCompletionEvent], LLMError> {
        do {
            var events: [ChatCompletionEvent] = []
            for try await event in try await client.stream(request) { events.append(event) }
            return .success(events)
        } catch let error as LLMError {
            return .failure(error)
        } catch {
            Issue.record("unexpected error \(error)")
            return .failure(.connection("unexpected"))
        }
    }

    @Test func streamsDeltasFinishAndUsageFromChunksSplitAnywhere() async throws {
        let server = try FakeOpenAIServer()
        server.enqueue(.answer("Grüß dich 👋🏽, wie geht's?", chunkSize: 3))
        let events = try await collect(client(server), body()).get()
        let text = events.compactMap { if case .delta(let piece) = $0 { piece } else { nil } }.joined()
        #expect(text == "Grüß dich 👋🏽, wie geht's?")
        #expect(events.contains(.finished(reason: "stop")))
        let usage = try #require(events.compactMap { if case .usage(let usage) = $0 { usage } else { nil } }.first)
        #expect(usage.completionTokens == 5)  // the fake streams five word pieces
        #expect((usage.promptTokens ?? 0) > 0)
    }

    @Test func sendsTheRequestTheWayOpenAIExpectsIt() async throws {
        let server = try FakeOpenAIServer()
        _ = try await collect(client(server, appURL: "https://example.org/bot", appName: "My Bot"), body("hello")).get()
        let received = try #require(server.requests.first)
        #expect(received.method == "POST")
        #expect(received.path == "/v1/chat/completions")
        #expect(received.headers["authorization"] == "Bearer test-key")
        #expect(received.headers["accept"] == "text/event-stream")
        #expect(received.headers["http-referer"] == "https://example.org/bot")
        #expect(received.headers["x-title"] == "My Bot")
        let chat = try #require(server.chatRequests.first)
        #expect(chat.stream == true)
        #expect(chat.stream_options?.include_usage == true)
        #expect(chat.max_tokens == 50)
        #expect(chat.max_completion_tokens == nil)
        #expect(chat.temperature == 0.4)
        #expect(chat.messages.map(\.role) == ["system", "user"])
    }

    @Test func omitsAttributionHeadersUnlessBothAreSet() async throws {
        let server = try FakeOpenAIServer()
        _ = try await collect(client(server, appURL: "https://example.org/bot"), body()).get()
        let received = try #require(server.requests.first)
        #expect(received.headers["http-referer"] == nil)
        #expect(received.headers["x-title"] == nil)
    }

    @Test func classifiesEveryHTTPFault() async throws {
        let server = try FakeOpenAIServer(.init(models: ["m"]))
        let client = client(server)
        let cases: [(FakeOpenAIServer.Behavior, LLMError)] = [
            (.rateLimited(retryAfterSeconds: 7), .rateLimited(retryAfter: .seconds(7))),
            (.rateLimited(retryAfterSeconds: nil), .rateLimited(retryAfter: nil)),
            (.quotaExceeded, .quotaExceeded),
            (.serverError(status: 500), .server(status: 500)),
            (.serverError(status: 503), .server(status: 503)),
            (.contextLengthExceeded, .contextLengthExceeded),
        ]
        for (behavior, expected) in cases {
            server.enqueue(behavior)
            #expect(await collect(client, body()) == .failure(expected), "\(behavior)")
        }
    }

    @Test func classifiesUnauthorizedInBothShapesWithoutEchoingTheKey() async throws {
        let server = try FakeOpenAIServer()
        server.enqueue(.unauthorized)
        guard case .failure(.unauthorized(401, let message)) = await collect(client(server), body()) else {
            Issue.record("expected unauthorized")
            return
        }
        #expect(message.contains("Incorrect API key"))
        server.enqueue(.unauthorizedDetail)
        guard case .failure(.unauthorized(401, let detail)) = await collect(client(server), body()) else {
            Issue.record("expected unauthorized")
            return
        }
        #expect(detail == "Invalid authentication credentials")

        let wrongKey = "sk-wrong-key-1234567890"
        let result = await collect(client(server, key: wrongKey), body())
        guard case .failure(let error) = result, case .unauthorized = error else {
            Issue.record("expected unauthorized, got \(result)")
            return
        }
        #expect(!"\(error)".contains(wrongKey))
    }

    @Test func redactsTheKeyWhenAServerQuotesItBack() {
        let body = Data(#"{"error":{"message":"Incorrect API key provided: sk-secret-123."}}"#.utf8)
        let error = LLMError(status: 401, headers: [:], body: body, apiKey: "sk-secret-123")
        #expect(error == .unauthorized(status: 401, message: "Incorrect API key provided: [REDACTED]."))
    }

    @Test func unknownModelIsModelNotFound() async throws {
        let server = try FakeOpenAIServer(.init(models: ["known"]))
        guard case .failure(.modelNotFound(let message)) = await collect(client(server), body(model: "unknown")) else {
            Issue.record("expected modelNotFound")
            return
        }
        #expect(message.contains("unknown"))
    }

    @Test func streamFaultsAreErrorsNotEmptyAnswers() async throws {
        let server = try FakeOpenAIServer()
        let client = client(server)
        let cases: [(FakeOpenAIServer.Behavior, LLMError)] = [
            (.emptyStream, .emptyStream),
            (.droppedStream(after: "Half an ans"), .streamEndedUnexpectedly),
            (.garbageLine(after: "Some text "), .malformedEvent),
            (.inStreamError(after: "Some ", message: "overloaded"), .streamError(message: "overloaded")),
        ]
        for (behavior, expected) in cases {
            server.enqueue(behavior)
            #expect(await collect(client, body()) == .failure(expected), "\(behavior)")
        }
    }

    @Test func aStreamWithAFinishReasonButNoDoneIsComplete() async throws {
        let server = try FakeOpenAIServer()
        let sse = FakeOpenAIServer.sse(text: "All here", model: "m", finish: "stop", usage: nil, done: false)
        server.enqueue(.rawSSE(sse, chunkSize: 5))
        let events = try await collect(client(server), body()).get()
        #expect(events.last == .finished(reason: "stop"))
    }

    /// Events that arrive together are handed on as one piece of text: the engine and the
    /// presenter then append and show once per hand-over, not once per event.
    @Test func eventsThatArriveTogetherBecomeOneDelta() async throws {
        let server = try FakeOpenAIServer()
        let sse = FakeOpenAIServer.sse(text: "Hello there, friend.", model: "m", finish: "stop", usage: nil)
        server.enqueue(.rawSSE(sse, chunkSize: 1 << 20))  // one write
        let events = try await collect(client(server), body()).get()
        #expect(events == [.delta("Hello there, friend."), .finished(reason: "stop")])
        #expect(FakeOpenAIServer.pieces("Hello there, friend.").count > 1, "the server sent several events")
    }

    @Test func aConnectionRefusedIsAConnectionError() async throws {
        // Nothing listens on port 1 of the loopback interface here.
        let refused = ChatCompletionsClient(baseURL: URL(string: "http://127.0.0.1:1/v1")!, apiKey: Secret("k"), http: HTTPClient())
        let result = await collect(refused, body())
        guard case .failure(.connection) = result else {
            Issue.record("expected a connection error, got \(result)")
            return
        }
    }
}

extension Result where Success == [ChatCompletionEvent], Failure == LLMError {
    static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.success(let a), .success(let b)): a == b
        case (.failure(let a), .failure(let b)): a == b
        default: false
        }
    }
}
