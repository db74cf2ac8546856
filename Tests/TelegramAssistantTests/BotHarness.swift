import CurlHTTP
import Foundation
import Logging
import ServiceLifecycle
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

/// The real bot (poller, router, sessions, scheduler, streaming) against both fake servers, with
/// Telegram's flood limits scaled up by the same factor on both sides so tests run in seconds.
struct BotHarness {
    static let scale = 10.0

    let llm: FakeOpenAIServer
    let telegram: FakeTelegramServer
    let store: any Store
    let log: LogCapture
    let config: AssistantConfig
    /// How long an album stays open after its latest part.
    var albumSettle: Duration = .milliseconds(600)
    /// Told of every Bot API call (the metrics tests).
    var telegramObserver: BotAPIClient.Observer?

    init(
        llm: FakeOpenAIServer.Settings = .init(), llmServer: FakeOpenAIServer? = nil, telegram: FakeTelegramServer? = nil,
        overrides: [String: String] = [:], store: (any Store)? = nil, supportsDrafts: Bool = true
    ) throws {
        self.llm = try llmServer ?? FakeOpenAIServer(llm)
        self.telegram = try telegram ?? FakeTelegramServer(limits: .init(scale: Self.scale), supportsDrafts: supportsDrafts)
        self.store = try store ?? SQLiteStore()
        log = try LogCapture()
        var values = [
            "OPENAI_API_KEY": self.llm.settings.apiKey, "OPENAI_BASE_URL": self.llm.baseURL.absoluteString,
            "OPENAI_MODEL": "test-model", "TELEGRAM_BOT_TOKEN": self.telegram.token,
            "TELEGRAM_API_URL": self.telegram.baseURL.absoluteString, "TELEGRAM_POLL_TIMEOUT": "1",
        ]
        values.merge(overrides) { $1 }
        config = try AssistantConfig.parse(requireTelegram: true, environment: values)
    }

    /// The bot as `run` builds it, with the test's servers, scaled limits, a fast tick and no
    /// waiting between model retries.
    func connect(
        notifier: SystemdNotifier = SystemdNotifier(environment: [:]), logger: Logger? = nil,
        maintenanceInterval: Duration = .seconds(3600), updateRetention: Duration = .seconds(86_400)
    ) async throws -> TelegramBot {
        try await assistant(
            notifier: notifier, logger: logger, maintenanceInterval: maintenanceInterval, updateRetention: updateRetention
        ).connectBot()
    }

    /// The composition root with the harness's overrides.
    func assistant(
        notifier: SystemdNotifier = SystemdNotifier(environment: [:]), logger: Logger? = nil,
        maintenanceInterval: Duration = .seconds(3600), updateRetention: Duration = .seconds(86_400)
    ) throws -> Assistant {
        var overrides = Assistant.Overrides()
        overrides.http = HTTPClient()
        overrides.store = store
        overrides.modelRetryClock = RecordingClock()
        overrides.random = { 0.5 }
        overrides.timeouts = LLMTimeouts(firstByte: .seconds(60), idle: .seconds(60), total: .seconds(120))
        overrides.limits = TelegramLimits(scale: Self.scale)
        overrides.tick = .milliseconds(10)
        overrides.notifier = notifier
        overrides.maintenanceInterval = maintenanceInterval
        overrides.updateRetention = updateRetention
        overrides.albumSettle = albumSettle
        overrides.telegramObserver = telegramObserver
        overrides.leadershipCheck = .milliseconds(50)
        overrides.replicaTimeout = .seconds(5)
        return try Assistant(config: config, logger: logger ?? log.logger, overrides: overrides)
    }

    /// Runs the bot (and the services `alongWith` makes for it) while `body` runs, then stops it the
    /// way a shutdown does.
    func withBot(alongWith extra: (TelegramBot) throws -> [any Service] = { _ in [] }, _ body: (TelegramBot) async throws -> Void) async throws {
        let bot = try await connect()
        let group = bot.serviceGroup(logger: log.logger, alongWith: try extra(bot))
        let running = Task { try await group.run() }
        do {
            try await body(bot)
        } catch {
            running.cancel()
            _ = await running.result
            throw error
        }
        running.cancel()
        _ = try await running.value
    }

    /// Waits until `condition` holds, checking often; fails the test after `timeout`.
    func eventually(_ what: String, timeout: Duration = .seconds(20), _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(await condition()) {
            if ContinuousClock.now > deadline {
                Issue.record("timed out waiting for \(what)")
                throw CancellationError()
            }
            // Not too often: dozens of tests poll at once on two cores, and a check can read the log.
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The bot's final messages in a chat.
    func texts(_ chatID: Int64) -> [String] { telegram.visibleMessages(chatID: chatID).map(\.text) }

    var replyRecords: [[String: Any]] { log.records(containing: "\"event\":\"reply\"").filter { $0["event"] as? String == "reply" } }
}
