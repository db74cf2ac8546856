import CurlHTTP
import Foundation
import Logging
import Testing
import TestSupport

@testable import TelegramAssistant

/// The real bot (poller, router, sessions, scheduler, streaming) against both fake servers, with
/// Telegram's flood limits scaled up by the same factor on both sides so tests run in seconds.
struct BotHarness {
    static let scale = 10.0

    let llm: FakeOpenAIServer
    let telegram: FakeTelegramServer
    let store: Store
    let log: LogCapture
    let config: AssistantConfig

    init(
        llm: FakeOpenAIServer.Settings = .init(), llmServer: FakeOpenAIServer? = nil, telegram: FakeTelegramServer? = nil,
        overrides: [String: String] = [:], store: Store? = nil, supportsDrafts: Bool = true
    ) throws {
        self.llm = try llmServer ?? FakeOpenAIServer(llm)
        self.telegram = try telegram ?? FakeTelegramServer(limits: .init(scale: Self.scale), supportsDrafts: supportsDrafts)
        self.store = try store ?? Store()
        log = try LogCapture()
        var values = [
            "OPENAI_API_KEY": self.llm.settings.apiKey, "OPENAI_BASE_URL": self.llm.baseURL.absoluteString,
            "OPENAI_MODEL": "test-model", "TELEGRAM_BOT_TOKEN": self.telegram.token,
            "TELEGRAM_API_URL": self.telegram.baseURL.absoluteString, "TELEGRAM_POLL_TIMEOUT": "1",
        ]
        values.merge(overrides) { $1 }
        config = try AssistantConfig.parse(requireTelegram: true) { values[$0] }
    }

    func connect(
        notifier: SystemdNotifier = SystemdNotifier(environment: [:]), logger: Logger? = nil,
        maintenanceInterval: Duration = .seconds(3600), updateRetention: Duration = .seconds(86_400)
    ) async throws -> TelegramBot {
        let logger = logger ?? log.logger
        let http = HTTPClient()
        let client = ChatCompletionsClient(baseURL: config.baseURL, apiKey: config.apiKey, http: http)
        let runner = CompletionRunner(
            client: client, policy: RetryPolicy(random: { 0.5 }),
            timeouts: LLMTimeouts(firstByte: .seconds(60), idle: .seconds(60), total: .seconds(120)), clock: RecordingClock())
        let engine = ConversationEngine(settings: EngineSettings(config), store: store, runner: runner, logger: logger)
        return try await TelegramBot.connect(
            config: config, engine: engine, store: store, logger: logger, http: http,
            limits: TelegramLimits(scale: Self.scale), tick: .milliseconds(10), notifier: notifier,
            maintenanceInterval: maintenanceInterval, updateRetention: updateRetention)
    }

    /// Runs the bot while `body` runs, then stops it the way a shutdown does.
    func withBot(_ body: (TelegramBot) async throws -> Void) async throws {
        let bot = try await connect()
        let running = Task { try await bot.run() }
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
    func eventually(_ what: String, timeout: Duration = .seconds(20), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
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
