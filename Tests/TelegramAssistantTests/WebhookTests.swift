#if Cluster
import Foundation
import Logging
import Testing
import TestSupport

@testable import AssistantStore
@testable import ClusterServer
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd

/// Webhook mode (the Cluster build): the fake Telegram server posts to the bot's listener the way
/// the Bot API server does (one update in flight per chat, the secret header, again until 200).
@Suite(.timeLimit(.minutes(2))) struct WebhookTests {
    static let secret = "s3cret_-Token"

    /// A port nothing listens on now (bound and released), for the webhook's URL and listener.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The harness's bot in webhook mode, with the listener as `run` builds it.
    struct WebhookBot {
        let harness: BotHarness
        let url: URL

        init(telegram: FakeTelegramServer? = nil, llm: FakeOpenAIServer? = nil, store: (any Store)? = nil) throws {
            let port = try WebhookTests.freePort()
            url = URL(string: "http://127.0.0.1:\(port)/telegram/hook")!
            harness = try BotHarness(
                llmServer: llm, telegram: telegram,
                overrides: [
                    "TELEGRAM_WEBHOOK_URL": url.absoluteString, "WEBHOOK_LISTEN": "127.0.0.1:\(port)",
                    "TELEGRAM_WEBHOOK_SECRET": WebhookTests.secret, "WEBHOOK_MAX_CONNECTIONS": "8",
                ], store: store)
        }

        /// Runs the bot and its listener while `body` runs, then shuts them down.
        func run(_ body: () async throws -> Void) async throws {
            let webhook = try #require(harness.config.telegram?.webhook)
            let listen = try #require(harness.config.webhookListen)
            let (url, harness) = (url, harness)
            try await harness.withBot(alongWith: { bot in
                [
                    ClusterServer(
                        host: listen.host, port: listen.port, metrics: BotMetrics(),
                        webhook: ClusterServer.Webhook(path: url.path, secret: webhook.secret, intake: bot.intake), status: bot.status,
                        store: harness.store, logger: harness.log.logger)
                ]
            }) { _ in try await body() }
        }
    }

    @Test func everyChatIsAnsweredOnceAndNothingIsPolled() async throws {
        let bot = try WebhookBot()
        let harness = bot.harness
        let chats: [Int64] = [801, 802, 803]
        try await bot.run {
            for chat in chats {
                harness.telegram.deliverText("first from \(chat)", chatID: chat)
                harness.telegram.deliverText("second from \(chat)", chatID: chat)
            }
            try await harness.eventually("every answer") { chats.allSatisfy { harness.texts($0).count == 2 } }
            try await harness.eventually("the ledger closed") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.telegram.pendingUpdateCount == 0, "every post was answered 200")
        // Posts that came before the listener was up, or while the bot started, were sent again.
        #expect(harness.telegram.webhookPosts.allSatisfy { [200, 503, nil].contains($0.status) }, "\(harness.telegram.webhookPosts.map(\.status))")
        #expect(Set(harness.telegram.webhookPosts.filter { $0.status == 200 }.map(\.updateID)).count == 6)
        #expect(harness.telegram.calls("getUpdates").isEmpty && harness.telegram.calls("deleteWebhook").isEmpty)
        let set = try #require(harness.telegram.calls("setWebhook").first)
        #expect(set.parameters["secret_token"]?.string == Self.secret && set.parameters["max_connections"]?.int == 8)
        #expect(set.parameters["url"]?.string == bot.url.absoluteString)
        // In order within each chat: the model saw the first before the second.
        let asked = harness.llm.chatRequests.compactMap { $0.messages.last?.content }
        for chat in chats {
            #expect(asked.firstIndex(of: "first from \(chat)")! < asked.firstIndex(of: "second from \(chat)")!)
        }
        #expect(harness.llm.chatRequests.count == 6)
        #expect(!harness.log.text.contains(Self.secret), "the secret is never logged")
    }

    @Test func aPostWithoutTheSecretIsRefusedAndNothingIsStored() async throws {
        let bot = try WebhookBot()
        let harness = bot.harness
        let forged = #"{"update_id":5,"message":{"message_id":1,"date":0,"chat":{"id":77,"type":"private"},"from":{"id":77,"is_bot":false,"first_name":"M"},"text":"forged"}}"#
        try await bot.run {
            try await harness.eventually("the webhook set") { harness.telegram.webhookURL != nil }
            // Set only once its listener was up: Telegram's first post comes at once.
            #expect(harness.telegram.webhookListening == [true])
            #expect(await FakeTelegramServer.postToWebhook(forged, url: bot.url, secret: "wrong") == 401)
            #expect(await FakeTelegramServer.postToWebhook(forged, url: bot.url, secret: nil) == 401)
            #expect(await FakeTelegramServer.postToWebhook(forged, url: bot.url, secret: String(Self.secret.dropLast())) == 401)
            #expect(await FakeTelegramServer.postToWebhook(forged, url: bot.url.appending(path: "other"), secret: Self.secret) == 404)
            #expect(try await harness.store.openUpdates().isEmpty, "nothing stored")
            #expect(try await harness.store.updateOffset() == nil)
            // The same body with the secret is taken: the check, not the body, refused it.
            harness.telegram.addChat(77, type: "private")
            #expect(await FakeTelegramServer.postToWebhook(forged, url: bot.url, secret: Self.secret) == 200)
            try await harness.eventually("the answer") { harness.texts(77).count == 1 }
        }
    }

    /// The database refuses the update: the answer is not 200, Telegram sends it again, and once
    /// the database is back it is answered once.
    @Test func anUpdateThatCouldNotBeStoredIsSentAgainAndAnsweredOnce() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/db.sqlite"
        let bot = try WebhookBot(store: try SQLiteStore(path: path, busyTimeout: 0.05))
        let harness = bot.harness
        try await bot.run {
            try await harness.eventually("the webhook set") { harness.telegram.webhookURL != nil }
            let holder = try WriteLockHolder(path: path)
            harness.telegram.deliverText("while locked", chatID: 850)
            try await harness.eventually("a refused post") { harness.telegram.webhookPosts.contains { $0.status == 500 } }
            #expect(harness.texts(850).isEmpty)
            holder.release()
            try await harness.eventually("the answer") { harness.texts(850).count == 1 }
            try await harness.eventually("the ledger closed") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.llm.chatRequests.count == 1)
    }

    /// Polling → webhook → polling, with updates waiting at Telegram each time the bot is down;
    /// on SQLite, and on PostgreSQL (where replicas' leases hand the updates over).
    @Test(arguments: StoreFixture.all) func switchingModesEitherWayLosesNothing(_ fixture: StoreFixture) async throws {
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let llm = try FakeOpenAIServer()
        let polling = try BotHarness(llmServer: llm, telegram: telegram, store: try await fixture.open())
        try await polling.withBot { _ in
            telegram.deliverText("one", chatID: 860)
            try await polling.eventually("the first answer") { telegram.visibleMessages(chatID: 860).count == 1 }
        }
        telegram.deliverText("two", chatID: 860)  // while no bot runs
        let pushed = try WebhookBot(telegram: telegram, llm: llm, store: try await fixture.open())
        try await pushed.run {
            try await pushed.harness.eventually("the second answer") { telegram.visibleMessages(chatID: 860).count == 2 }
        }
        // The webhook is still set and nothing listens: the update waits at Telegram. (Held, not
        // posted: the port the webhook names is free now, and another test's server may take it.)
        telegram.holdPushes(true)
        telegram.deliverText("three", chatID: 860)
        #expect(telegram.webhookURL != nil && telegram.pendingUpdateCount == 1)
        let again = try BotHarness(llmServer: llm, telegram: telegram, store: try await fixture.open())
        try await again.withBot { _ in
            try await again.eventually("the third answer") { telegram.visibleMessages(chatID: 860).count == 3 }
            try await again.eventually("the ledger closed") { await again.store.openUpdatesCount == 0 }
        }
        #expect(telegram.webhookURL == nil, "polling removed the webhook")
        #expect(llm.chatRequests.map { $0.messages.last?.content } == ["one", "two", "three"])
    }

    /// Two replicas start at once: the second setWebhook gets Telegram's 429, sees the webhook is
    /// already theirs, and goes on; neither logs a failure.
    @Test func replicasStartingTogetherSetTheWebhookOnce() async throws {
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let port = try Self.freePort()
        let url = "http://127.0.0.1:\(port)/telegram/hook"
        let settings = ["TELEGRAM_WEBHOOK_URL": url, "WEBHOOK_LISTEN": "127.0.0.1:\(port)", "TELEGRAM_WEBHOOK_SECRET": Self.secret]
        let first = try BotHarness(telegram: telegram, overrides: settings)
        let second = try BotHarness(telegram: telegram, overrides: settings)
        let bots = try await (first.connect(), second.connect())
        // No listener here (the setWebhook calls are the point): the intakes are told it is up.
        bots.0.intake.listenerIsUp()
        bots.1.intake.listenerIsUp()
        let runs = [
            Task { try await bots.0.serviceGroup(logger: first.log.logger).run() },
            Task { try await bots.1.serviceGroup(logger: second.log.logger).run() },
        ]
        defer { runs.forEach { $0.cancel() } }
        for harness in [first, second] {
            try await harness.eventually("ready") { harness.log.records.contains { $0["msg"] as? String == "webhook_set" } }
            #expect(!harness.log.records.contains { $0["msg"] as? String == "webhook_failed" })
        }
        #expect(telegram.calls("setWebhook").count == 2)
        #expect(telegram.calls("getWebhookInfo").count == 1, "the one refused asked whether the webhook was already set")
    }
}
#endif
