import CurlHTTP
import Foundation
import Logging

/// The composition root: builds the long-lived parts from a validated configuration.
public struct Assistant: Sendable {
    public let config: AssistantConfig
    public let store: Store
    public let engine: ConversationEngine
    public let logger: Logger
    /// Shared with the Telegram side: one event thread and one connection pool per process.
    public let http: HTTPClient

    /// Opens the database and wires the engine. Throws `StoreError` with a readable message.
    public init(config: AssistantConfig, logger: Logger, http: HTTPClient? = nil) throws {
        let http = http ?? config.makeHTTPClient()
        self.http = http
        self.config = config
        self.logger = logger
        store = try Store(path: config.databasePath)
        let client = ChatCompletionsClient(
            baseURL: config.baseURL, apiKey: config.apiKey, appURL: config.appURL, appName: config.appName, http: http,
            transportTimeout: max(config.timeouts.firstByte, config.timeouts.idle) + .seconds(5))
        let runner = CompletionRunner(client: client, timeouts: config.timeouts)
        engine = ConversationEngine(settings: EngineSettings(config), store: store, runner: runner, logger: logger)
    }

    /// A logger that writes JSON lines to `sink` at the configured level.
    public static func makeLogger(label: String, level: Logger.Level, sink: LogSink) -> Logger {
        Logger(label: label) { label in JSONLogHandler(label: label, level: level, sink: sink) }
    }
}
