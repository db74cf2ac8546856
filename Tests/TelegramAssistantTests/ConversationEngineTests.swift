import Foundation
import Synchronization
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

@Suite(.timeLimit(.minutes(2))) struct ConversationEngineTests {
    func newConversation(_ harness: Harness) async throws -> Int64 {
        try await harness.store.createConversation(kind: "terminal").id
    }

    @Test func answersWithSystemPromptFirstAndRemembersBothTurns() async throws {
        let harness = try Harness(overrides: ["OPENAI_SYSTEM_PROMPT": "Be brief."])
        let id = try await newConversation(harness)
        let deltas = DeltaCollector()
        guard case .answered(let completion) = await harness.engine.reply(to: "My name is Ada.", conversationID: id, onDelta: deltas.append) else {
            Issue.record("expected an answer")
            return
        }
        #expect(completion.text == "Echo: My name is Ada.")
        #expect(deltas.text == completion.text)
        _ = await harness.engine.reply(to: "What is my name?", conversationID: id) { _ in }
        let second = try #require(harness.server.chatRequests.last)
        #expect(second.messages.map(\.role) == ["system", "user", "assistant", "user"])
        #expect(second.messages[0].content == "Be brief.")
        #expect(second.messages[1].content == "My name is Ada.")
        #expect(second.messages[2].content == "Echo: My name is Ada.")
        let saved = try await harness.store.allMessages(conversationID: id)
        #expect(saved.map(\.status) == [.complete, .complete, .complete, .complete])
        #expect(saved[1].model == "test-model")
    }

    @Test func theUserTurnIsSavedBeforeTheRequestAndMarkedFailedWhenNoTextCame() async throws {
        let harness = try Harness()
        let id = try await newConversation(harness)
        // While the answer streams, the user's turn is already on disk.
        let store = harness.store
        let seenDuringStream = Mutex<[String]>([])
        _ = await harness.engine.reply(to: "saved first", conversationID: id) { _ in
            let contents = (try? await store.allMessages(conversationID: id).map(\.content)) ?? []
            seenDuringStream.withLock { $0 = contents }
        }
        #expect(seenDuringStream.withLock { $0 } == ["saved first"])
        try await harness.engine.clear(conversationID: id)

        harness.server.enqueue(.quotaExceeded)
        let outcome = await harness.engine.reply(to: "lost to quota", conversationID: id) { _ in }
        guard case .failed(.quotaExceeded) = outcome else {
            Issue.record("expected quota failure, got \(outcome)")
            return
        }
        #expect(outcome.notice == "The AI provider's quota is used up. Please tell the bot's operator.")
        let saved = try await harness.store.allMessages(conversationID: id)
        #expect(saved.map(\.content) == ["lost to quota"])
        #expect(saved.map(\.status) == [.failed])

        _ = await harness.engine.reply(to: "second try", conversationID: id) { _ in }
        let next = try #require(harness.server.chatRequests.last)
        #expect(!next.messages.contains { $0.content == "lost to quota" }, "a failed turn is left out of later requests")
        let stats = try await harness.engine.stats(conversationID: id)
        #expect(stats.requests == 3)
        #expect(stats.failures == 1)
    }

    @Test func aBrokenStreamKeepsThePartialAnswerMarkedAndSaved() async throws {
        let harness = try Harness()
        let id = try await newConversation(harness)
        harness.server.enqueue(.droppedStream(after: "Once upon a "))
        let outcome = await harness.engine.reply(to: "Tell a story", conversationID: id) { _ in }
        guard case .interrupted(let partial, _, let reason?) = outcome else {
            Issue.record("expected interrupted, got \(outcome)")
            return
        }
        #expect(partial == "Once upon a ")
        #expect(reason.errorType == "interrupted_stream_ended_unexpectedly")
        #expect(outcome.notice?.hasPrefix("(interrupted)") == true)
        let saved = try await harness.store.allMessages(conversationID: id)
        #expect(saved.map(\.status) == [.complete, .partial])
        #expect(saved.last?.content == "Once upon a ")

        _ = await harness.engine.reply(to: "go on", conversationID: id) { _ in }
        let next = try #require(harness.server.chatRequests.last)
        #expect(next.messages.map(\.content).contains("Once upon a "))
    }

    @Test func cancellingAReplyKeepsWhatWasShown() async throws {
        let harness = try Harness()
        let id = try await newConversation(harness)
        harness.server.enqueue(.stall(after: "Partial words "))
        let deltas = DeltaCollector()
        let engine = harness.engine
        let task = Task { await engine.reply(to: "hi", conversationID: id, onDelta: deltas.append) }
        try await waitUntil("the first text") { !deltas.text.isEmpty }
        task.cancel()
        let outcome = await task.value
        guard case .interrupted("Partial words ", _, nil) = outcome else {
            Issue.record("expected a stopped reply, got \(outcome)")
            return
        }
        #expect(outcome.notice == "(interrupted)")
        let saved = try await harness.store.allMessages(conversationID: id)
        #expect(saved.map(\.status) == [.complete, .partial])
    }

    @Test func contextLengthTrimsHarderAndRetriesOnceThenSuggestsClear() async throws {
        let harness = try Harness()
        let id = try await newConversation(harness)
        for index in 1...4 { _ = await harness.engine.reply(to: "turn \(index)", conversationID: id) { _ in } }
        harness.server.enqueue(.contextLengthExceeded)
        guard case .answered = await harness.engine.reply(to: "turn 5", conversationID: id, onDelta: { _ in }) else {
            Issue.record("expected the retry to succeed")
            return
        }
        let requests = harness.server.chatRequests
        let rejected = requests[requests.count - 2]
        let retried = requests[requests.count - 1]
        #expect(retried.messages.count < rejected.messages.count)
        #expect(retried.messages.last?.content == "turn 5")
        #expect(retried.messages[1].role == "user")

        harness.server.enqueue(.contextLengthExceeded, .contextLengthExceeded)
        let outcome = await harness.engine.reply(to: "turn 6", conversationID: id) { _ in }
        guard case .failed(.contextLengthExceeded) = outcome else {
            Issue.record("expected a context failure, got \(outcome)")
            return
        }
        #expect(outcome.notice?.contains("/clear") == true)
        #expect(harness.server.chatRequests.count == requests.count + 2, "retried exactly once")
    }

    @Test func theProviderNeverSeesARequestOverItsWindow() async throws {
        // The fake rejects anything over 600 tokens; the engine's budget is 600 - 100 output.
        let harness = try Harness(.init(contextWindow: 600), overrides: ["OPENAI_CONTEXT_TOKENS": "600", "OPENAI_MAX_OUTPUT_TOKENS": "100"])
        let id = try await newConversation(harness)
        for index in 1...30 {
            let outcome = await harness.engine.reply(to: UserTurn("message \(index) " + String(repeating: "padding ", count: 40)), conversationID: id) { _ in }
            guard case .answered = outcome else {
                Issue.record("turn \(index): \(outcome)")
                return
            }
        }
        #expect(harness.server.chatRequests.count == 30)
    }

    @Test func aMessageThatCannotFitIsRefusedWithoutACall() async throws {
        let harness = try Harness(overrides: ["OPENAI_CONTEXT_TOKENS": "600", "OPENAI_MAX_OUTPUT_TOKENS": "100"])
        let id = try await newConversation(harness)
        let outcome = await harness.engine.reply(to: UserTurn(String(repeating: "far too long ", count: 400)), conversationID: id) { _ in }
        guard case .messageTooLong(_, 500) = outcome else {
            Issue.record("expected messageTooLong, got \(outcome)")
            return
        }
        #expect(harness.server.requests.isEmpty)
        #expect(try await harness.store.allMessages(conversationID: id).map(\.status) == [.failed])
    }

    @Test func summariesFoldTurnsThatLeaveTheWindow() async throws {
        let harness = try Harness(overrides: ["SUMMARIZE_HISTORY": "true", "OPENAI_MAX_HISTORY_MESSAGES": "4"])
        let id = try await newConversation(harness)
        for index in 1...2 { _ = await harness.engine.reply(to: "fact \(index)", conversationID: id) { _ in } }
        // The third turn makes 5 messages > 4: the oldest block is folded into a summary first.
        harness.server.enqueue(.answer("User stated fact 1."), .answer("ok"))
        _ = await harness.engine.reply(to: "fact 3", conversationID: id) { _ in }
        let requests = harness.server.chatRequests
        let summaryCall = requests[requests.count - 2]
        #expect(summaryCall.messages.first?.content == ConversationEngine.summaryInstruction)
        #expect(summaryCall.messages.last?.content.contains("User: fact 1") == true)
        let reply = requests[requests.count - 1]
        // The summary is written from what users said, so it never gets the system's rank: it
        // travels inside the first user turn of the window, marked as context.
        #expect(reply.messages.filter { $0.role == "system" }.count == 1)
        #expect(!reply.messages.contains { $0.role == "system" && $0.content.contains("User stated fact 1.") })
        #expect(reply.messages.map(\.role).prefix(2) == ["system", "user"])
        #expect(reply.messages[1].content.hasPrefix(ConversationEngine.summaryHeading))
        #expect(reply.messages[1].content.contains("User stated fact 1."))
        #expect(reply.messages.count <= 1 + 4)
        #expect(harness.log.records.contains { $0["event"] as? String == "summary_call" })
        #expect(try await harness.store.conversation(id: id)?.summary == "User stated fact 1.")
    }

    @Test func statsAddUpTokensAndCostWithSixDecimals() async throws {
        let harness = try Harness(overrides: ["INPUT_PRICE_PER_MILLION": "0.15", "OUTPUT_PRICE_PER_MILLION": "0.6"])
        let id = try await newConversation(harness)
        harness.server.enqueue(.answer("one two three"))
        _ = await harness.engine.reply(to: "count", conversationID: id) { _ in }
        let stats = try await harness.engine.stats(conversationID: id)
        let request = try #require(harness.server.chatRequests.last)
        let prompt = FakeOpenAIServer.tokens(request.messages)
        #expect(stats.promptTokens == prompt)
        #expect(stats.completionTokens == 3)
        #expect(stats.usageEstimated == false)
        let cost = (Double(prompt) * 0.15 + 3 * 0.6) / 1_000_000
        #expect(abs(stats.costUSD - cost) < 1e-12)
        #expect(stats.text.contains("Estimated cost: $" + ConversationStats.sixDecimals(cost)))
        #expect(ConversationStats.sixDecimals(0.0000042) == "0.000004")
        #expect(ConversationStats.sixDecimals(1.5) == "1.500000")
        #expect(stats.messages == 2)
        #expect(stats.lastLatencyMs != nil)
    }

    @Test func estimatedUsageIsMarkedInStats() async throws {
        let harness = try Harness(.init(sendsUsage: false))
        let id = try await newConversation(harness)
        _ = await harness.engine.reply(to: "hi", conversationID: id) { _ in }
        let stats = try await harness.engine.stats(conversationID: id)
        #expect(stats.usageEstimated)
        #expect(stats.text.contains("Prompt tokens: \(stats.promptTokens) (estimated)"))
    }

    @Test func memorySurvivesARestart() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/assistant.sqlite"
        let server = try FakeOpenAIServer()
        let id: Int64
        do {
            let harness = try Harness(store: try SQLiteStore(path: path), server: server)
            id = try await newConversation(harness)
            _ = await harness.engine.reply(to: "The code word is pineapple.", conversationID: id) { _ in }
        }
        let restarted = try Harness(store: try SQLiteStore(path: path), server: server)
        _ = await restarted.engine.reply(to: "What was the code word?", conversationID: id) { _ in }
        let request = try #require(server.chatRequests.last)
        #expect(request.messages.map(\.content).contains("The code word is pineapple."))
    }

    @Test func aLockedDatabaseFailsTheReplyBeforeTheModelIsAskedAndSaysWhy() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/assistant.sqlite"
        let harness = try Harness(store: try SQLiteStore(path: path, busyTimeout: 0.05))
        let id = try await newConversation(harness)

        let holder = try WriteLockHolder(path: path)
        let outcome = await harness.engine.reply(to: "hello", conversationID: id) { _ in }
        holder.release()
        guard case .storageFailed = outcome else {
            Issue.record("expected storageFailed, got \(outcome)")
            return
        }
        #expect(outcome.notice?.hasPrefix("Could not save the conversation, so nothing was sent.") == true)
        #expect(harness.server.chatRequests.isEmpty, "an answer that cannot be saved is not asked for")
        let failure = try #require(harness.log.records.first { $0["msg"] as? String == "store_failed" })
        #expect(failure["error_type"] as? String == "storage")
        #expect((failure["error"] as? String)?.contains("\(path) is locked by another process") == true)

        let retried = await harness.engine.reply(to: "hello again", conversationID: id) { _ in }
        guard case .answered = retried else {
            Issue.record("expected an answer, got \(retried)")
            return
        }
        #expect(try await harness.store.allMessages(conversationID: id).map(\.content) == ["hello again", "Echo: hello again"])
    }

    @Test func modelChoiceIsPerConversation() async throws {
        let harness = try Harness()
        let first = try await newConversation(harness)
        let second = try await newConversation(harness)
        try await harness.engine.setModel("other-model", conversationID: first)
        _ = await harness.engine.reply(to: "a", conversationID: first) { _ in }
        _ = await harness.engine.reply(to: "b", conversationID: second) { _ in }
        #expect(harness.server.chatRequests.map(\.model) == ["other-model", "test-model"])
        #expect(try await harness.engine.model(for: first) == "other-model")
    }

    @Test func logsOneStructuredRecordPerCallAndNeverTheKey() async throws {
        let harness = try Harness(.init(apiKey: "sk-test-secret-key-0123456789"), overrides: ["OPENAI_FALLBACK_MODEL": "backup"])
        let id = try await newConversation(harness)
        _ = await harness.engine.reply(to: "hello", conversationID: id) { _ in }
        harness.server.enqueue(.unauthorized)
        _ = await harness.engine.reply(to: "again", conversationID: id) { _ in }

        let calls = harness.log.records.filter { $0["event"] as? String == "model_call" }
        #expect(calls.count == 2)
        let ok = try #require(calls.first)
        for key in ["conversation_id", "model", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "usage_estimated", "attempts", "fallback_used"] {
            #expect(ok[key] != nil, "missing \(key)")
        }
        #expect(ok["latency_ms"] is NSNumber)
        #expect(ok["error_type"] == nil)
        #expect(ok["msg"] as? String == "model_call")
        let failed = try #require(calls.last)
        #expect(failed["error_type"] as? String == "unauthorized")
        #expect(failed["level"] as? String == "error")
        #expect(!harness.log.text.contains("sk-test-secret-key-0123456789"))
        #expect(!harness.log.text.contains("hello"), "no message text at info level")
    }

    /// A model that loops is cut at 64 KiB with a note: memory, the database and the chat stay bounded.
    @Test func anAnswerPastTheHardCapIsCutWithANote() async throws {
        let harness = try Harness()
        let id = try await newConversation(harness)
        // 2 MB in 2,000 events: more than the socket buffers hold, so the server sees the close.
        let event = #"data: {"choices":[{"index":0,"delta":{"content":""# + String(repeating: "la", count: 500) + #" "},"finish_reason":null}]}"# + "\n\n"
        harness.server.enqueue(.rawSSE(String(repeating: event, count: 2_000) + "data: [DONE]\n\n", chunkSize: 64 * 1024))
        let outcome = await harness.engine.reply(to: "sing", conversationID: id) { _ in }
        guard case .answered(let completion) = outcome else {
            Issue.record("expected an answer, got \(outcome)")
            return
        }
        #expect(completion.truncated)
        #expect(completion.text.utf8.count <= 64 * 1024 && completion.text.utf8.count > 60 * 1024)
        #expect(outcome.notice?.contains("cut") == true)
        let saved = try await harness.store.allMessages(conversationID: id).last
        #expect(saved?.content == completion.text)
    }
}
