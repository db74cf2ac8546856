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

/// No type that holds the bot token or the API key can print it, whatever prints it.
@Suite(.timeLimit(.minutes(3))) struct SecretTests {
    static let token = "424242424:AAsecret-token-part-abcdef"
    static let tokenSecretPart = "AAsecret-token-part-abcdef"
    static let apiKey = "sk-very-secret-api-key-0123456789"

    /// Every way Swift can turn a value into text.
    static func renderings(_ value: Any) -> [String] {
        var dumped = ""
        dump(value, to: &dumped)
        return [String(describing: value), String(reflecting: value), "\(value)", dumped]
    }

    static func expectNoSecret(_ text: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!text.contains(tokenSecretPart), "\(what) shows the bot token", sourceLocation: sourceLocation)
        #expect(!text.contains(apiKey), "\(what) shows the API key", sourceLocation: sourceLocation)
    }

    @Test func aSecretPrintsAsRedactedEveryWay() {
        let secret = Secret(Self.apiKey)
        for text in Self.renderings(secret) + Self.renderings([secret]) + Self.renderings(Optional(secret) as Any) {
            Self.expectNoSecret(text, "Secret")
        }
        #expect(secret.value == Self.apiKey)
    }

    @Test func theBotItsClientsAndItsConfigurationNeverPrintASecret() async throws {
        let telegram = try FakeTelegramServer(token: Self.token)
        let harness = try BotHarness(
            llm: .init(apiKey: Self.apiKey), telegram: telegram,
            overrides: ["TELEGRAM_BOT_TOKEN": Self.token, "OPENAI_API_KEY": Self.apiKey, "LOG_LEVEL": "trace"])
        let bot = try await harness.connect()
        let values: [(String, Any)] = [
            ("TelegramBot", bot), ("UpdateIntake", bot.intake), ("ChatDispatcher", bot.dispatcher), ("AssistantConfig", harness.config),
            ("TelegramConfig", harness.config.telegram as Any),
            ("BotAPIClient", BotAPIClient(baseURL: telegram.baseURL, token: Secret(Self.token), http: HTTPClient())),
            ("ChatCompletionsClient", ChatCompletionsClient(baseURL: harness.llm.baseURL, apiKey: Secret(Self.apiKey), http: HTTPClient())),
        ]
        for (name, value) in values {
            for text in Self.renderings(value) { Self.expectNoSecret(text, name) }
        }
    }

    /// swift-service-lifecycle logs each service's description at debug; the whole bot runs at
    /// trace here, with a message answered, and every line it logs is scanned.
    @Test func atTraceTheServiceGroupAndTheBotLogNoSecret() async throws {
        let telegram = try FakeTelegramServer(token: Self.token, limits: .init(scale: BotHarness.scale))
        let harness = try BotHarness(
            llm: .init(apiKey: Self.apiKey), telegram: telegram,
            overrides: ["TELEGRAM_BOT_TOKEN": Self.token, "OPENAI_API_KEY": Self.apiKey])
        var logger = harness.log.logger
        logger.logLevel = .trace
        let bot = try await harness.connect(logger: logger)
        let group = bot.serviceGroup(logger: logger)
        let running = Task { try await group.run() }
        defer { running.cancel() }  // no bot outlives its test, however the test ends
        telegram.deliverText("hello there", chatID: 31)
        try await harness.eventually("the answer") { harness.texts(31) == ["Echo: hello there"] }
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(harness.log.text.contains("Starting service"), "the service group logged at trace")
        Self.expectNoSecret(harness.log.text, "the log")
    }

    /// The real binary at `LOG_LEVEL=trace`: standard output, standard error and the log file.
    @Test func theBinaryAtTracePrintsNoSecretAnywhere() async throws {
        let binary = try #require(CrashRecoveryTests.binary)
        let directory = TemporaryDirectory()
        let llm = try FakeOpenAIServer(.init(apiKey: Self.apiKey))
        let telegram = try FakeTelegramServer(token: Self.token)
        var environment = CrashRecoveryTests.environment(llm, telegram, database: directory.path + "/db.sqlite", ["LOG_LEVEL": "trace"])
        environment["PATH"] = ProcessInfo.processInfo.environment["PATH"]
        let output = directory.path + "/output.txt"
        let process = try ChildProcess(binary.path, ["run"], environment: environment, output: output)
        telegram.deliverText("hello", chatID: 32)
        try await waitUntil("the answer") { telegram.visibleMessages(chatID: 32).count == 1 }
        process.send(SIGTERM)
        try await process.end()
        let text = try String(contentsOfFile: output, encoding: .utf8)
        #expect(text.contains("\"level\":\"trace\"") || text.contains("Starting service"), "it logged at trace: \(text.prefix(300))")
        Self.expectNoSecret(text, "the binary's output")
    }

    /// A token Telegram rejects will not start working by itself: exit 78 (configuration), which the
    /// unit does not restart, instead of 1 and a restart every five seconds forever.
    @Test func aRejectedTokenExitsWithTheConfigurationStatus() async throws {
        let binary = try #require(CrashRecoveryTests.binary)
        let directory = TemporaryDirectory()
        let llm = try FakeOpenAIServer()
        let telegram = try FakeTelegramServer()
        let environment = CrashRecoveryTests.environment(
            llm, telegram, database: directory.path + "/db.sqlite", ["TELEGRAM_BOT_TOKEN": "999999:WRONG-token-but-well-formed-xx"])
        let (status, output) = try await runToEnd(binary, ["run"], environment: environment, timeout: .seconds(30))
        #expect(status == 78, "\(output)")
        #expect(output.contains("TELEGRAM_BOT_TOKEN was rejected by Telegram"))
        #expect(!output.contains("WRONG-token-but-well-formed-xx"))
    }
}
