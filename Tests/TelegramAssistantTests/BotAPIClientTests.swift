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

@Suite(.timeLimit(.minutes(2))) struct BotAPIClientTests {
    func client(_ server: FakeTelegramServer, token: String? = nil) -> BotAPIClient {
        BotAPIClient(baseURL: server.baseURL, token: Secret(token ?? server.token), http: HTTPClient())
    }

    func error(_ operation: () async throws -> Void) async -> TelegramError? {
        await Self.error(operation)
    }

    static func error(_ operation: () async throws -> Void) async -> TelegramError? {
        do {
            try await operation()
            return nil
        } catch let error as TelegramError {
            return error
        } catch {
            Issue.record("unexpected \(error)")
            return nil
        }
    }

    @Test func getMeNamesTheBot() async throws {
        let server = try FakeTelegramServer(botUsername: "helper_bot")
        let me = try await client(server).getMe()
        #expect(me.username == "helper_bot")
        #expect(me.is_bot)
    }

    @Test func aRejectedTokenIsUnauthorizedAndTheTokenAppearsNowhere() async throws {
        let server = try FakeTelegramServer()
        let secret = "987654321:SECRET-token-value"
        let failure = await error { _ = try await client(server, token: secret).getMe() }
        #expect(failure == .unauthorized)
        #expect(!"\(String(describing: failure))".contains(secret))
    }

    @Test func networkErrorsNameTheMethodNotTheURL() async throws {
        let dead = BotAPIClient(baseURL: URL(string: "http://127.0.0.1:1")!, token: Secret("111:SECRET"), http: HTTPClient())
        let failure = await error { _ = try await dead.getMe() }
        // Refused: the request never left, so it cannot have been applied.
        #expect(failure?.isAmbiguous == false)
        guard case .unreachable(let text)? = failure else {
            Issue.record("expected a network error, got \(String(describing: failure))")
            return
        }
        #expect(text.hasPrefix("getMe:"))
        #expect(!text.contains("SECRET"))
        #expect(!text.contains("127.0.0.1"))
    }

    @Test func sendsAndEditsWithEntitiesAndTreatsNotModifiedAsSuccess() async throws {
        let server = try FakeTelegramServer()
        server.addChat(42, type: "private")
        let client = client(server)
        let sent = try await client.sendMessage(chatID: 42, text: "héllo 👋 bold", entities: [.init(type: "bold", offset: 9, length: 4)])
        try await client.editMessageText(chatID: 42, messageID: sent.message_id, text: "héllo 👋 bold!", entities: [.init(type: "bold", offset: 9, length: 4)])
        // The same content again: Telegram says "not modified", the client says fine.
        try await client.editMessageText(chatID: 42, messageID: sent.message_id, text: "héllo 👋 bold!", entities: [.init(type: "bold", offset: 9, length: 4)])
        let visible = server.visibleMessages(chatID: 42)
        #expect(visible.map(\.text) == ["héllo 👋 bold!"])
        #expect(visible.first?.edits == 1)
        #expect(server.calls("editMessageText").map(\.status) == [200, 400])
        #expect(server.calls("sendMessage").first?.parameters["parse_mode"] == nil)
    }

    @Test func decodesEveryDocumentedFailure() async throws {
        let server = try FakeTelegramServer(supportsDrafts: false)
        server.addChat(1, type: "private")
        server.addChat(-5, type: "group")
        server.block(chatID: 1)
        server.migrate(chatID: -5, to: -1005)
        server.addChat(2, type: "private")
        let client = client(server)
        #expect(await error { _ = try await client.sendMessage(chatID: 1, text: "hi", entities: []) } == .forbidden("Forbidden: bot was blocked by the user"))
        #expect(await error { _ = try await client.sendMessage(chatID: -5, text: "hi", entities: []) } == .migrated(chatID: -1005))
        #expect(await error { _ = try await client.sendMessage(chatID: 2, text: String(repeating: "é", count: 4097), entities: []) } == .messageTooLong)
        #expect(await error { try await client.editMessageText(chatID: 2, messageID: 999, text: "x", entities: []) } == .messageToEditNotFound)
        let outOfBounds = await error { _ = try await client.sendMessage(chatID: 2, text: "👋", entities: [.init(type: "bold", offset: 0, length: 3)]) }
        guard case .cannotParseEntities? = outOfBounds else {
            Issue.record("expected cannotParseEntities, got \(String(describing: outOfBounds))")
            return
        }
        let drafts = await error { try await client.sendMessageDraft(chatID: 2, draftID: 1, text: "x", entities: [], canStop: true) }
        guard case .notFound? = drafts else {
            Issue.record("expected notFound, got \(String(describing: drafts))")
            return
        }
        server.failNext("sendMessage", status: 500, description: "Internal Server Error")
        #expect(await error { _ = try await client.sendMessage(chatID: 2, text: "x", entities: []) } == .server(status: 500))
    }

    @Test func exactly4096CodePointsFit() async throws {
        let server = try FakeTelegramServer()
        server.addChat(3, type: "private")
        // 4096 emoji: 4096 code points, 8192 UTF-16 units.
        _ = try await client(server).sendMessage(chatID: 3, text: String(repeating: "😀", count: 4096), entities: [])
        #expect(server.visibleMessages(chatID: 3).count == 1)
    }

    @Test func floodingAChatIsAnsweredWith429AndRetryAfter() async throws {
        let server = try FakeTelegramServer()
        server.addChat(4, type: "private")
        let client = client(server)
        // Ten at once: far over a burst of three and one per second, however slow the machine.
        let failures = await withTaskGroup(of: TelegramError?.self) { group in
            for index in 0..<10 {
                group.addTask { await Self.error({ _ = try await client.sendMessage(chatID: 4, text: "spam \(index)", entities: []) }) }
            }
            var failures: [TelegramError] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
        #expect(failures.allSatisfy { if case .rateLimited = $0 { true } else { false } })
        #expect(server.tooManyRequests == failures.count)
        #expect(failures.count >= 2)
    }

    @Test func draftsWorkOnlyInPrivateChats() async throws {
        let server = try FakeTelegramServer()
        server.addChat(5, type: "private")
        server.addChat(-6, type: "supergroup")
        let client = client(server)
        try await client.sendMessageDraft(chatID: 5, draftID: 77, text: "thinking…", entities: [], canStop: true)
        #expect(server.drafts(chatID: 5) == [77: "thinking…"])
        let failure = await error { try await client.sendMessageDraft(chatID: -6, draftID: 77, text: "x", entities: [], canStop: true) }
        guard case .badRequest? = failure else {
            Issue.record("expected badRequest, got \(String(describing: failure))")
            return
        }
    }

    @Test func aSecondPollerEndsTheFirstWithConflict() async throws {
        let server = try FakeTelegramServer()
        let first = client(server)
        let second = client(server)
        let firstPoll = Task { try await first.getUpdates(offset: nil, timeout: 50) }  // ended by the second, not by time
        // Wait (by watching the fake, not the clock) until the first poll is waiting.
        while server.pollsReceived == 0 { try await Task.sleep(for: .milliseconds(2)) }
        let secondPoll = Task { try await second.getUpdates(offset: nil, timeout: 1) }
        let firstResult = await firstPoll.result
        #expect(throws: TelegramError.self) { try firstResult.get() }
        _ = try await secondPoll.value
        let statuses = server.calls("getUpdates").map(\.status)
        #expect(statuses.contains(409))
    }

    @Test func aWebhookBlocksPollingUntilDeleted() async throws {
        let server = try FakeTelegramServer()
        server.setWebhook()
        let client = client(server)
        let failure = await error { _ = try await client.getUpdates(offset: nil, timeout: 0) }
        guard case .conflict(let text)? = failure else {
            Issue.record("expected conflict, got \(String(describing: failure))")
            return
        }
        #expect(text.contains("webhook"))
        try await client.deleteWebhook()
        #expect(try await client.getUpdates(offset: nil, timeout: 0).isEmpty)
    }

    @Test func updatesDecodeAndAHigherOffsetConfirmsThem() async throws {
        let server = try FakeTelegramServer()
        let id = server.deliverText("hello", chatID: 10)
        server.deliverPhoto(chatID: 10)
        let client = client(server)
        let updates = try await client.getUpdates(offset: nil, timeout: 0).compactMap(\.update)
        #expect(updates.map(\.update_id) == [id, id + 1])
        #expect(updates[0].message?.text == "hello")
        #expect(updates[0].message?.hasNonTextContent == false)
        #expect(updates[1].message?.hasNonTextContent == true)
        _ = try await client.getUpdates(offset: id + 2, timeout: 0)
        #expect(server.pendingUpdateCount == 0)
        let allowed = server.calls("getUpdates").first?.parameters["allowed_updates"]
        #expect(allowed == .array([.string("message"), .string("stopped_message_generation")]))
    }

    @Test func commandsAreValidatedLikeTelegramDoes() async throws {
        let server = try FakeTelegramServer()
        let client = client(server)
        try await client.setMyCommands([.init(command: "start", description: "Start"), .init(command: "model", description: "Model")])
        #expect(server.registeredCommands.count == 2)
        let failure = await error { try await client.setMyCommands([.init(command: "Bad-Name", description: "x")]) }
        #expect(failure == .badRequest("Bad Request: BOT_COMMAND_INVALID"))
    }
}
