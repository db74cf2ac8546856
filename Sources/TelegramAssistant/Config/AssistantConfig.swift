import AssistantStore
import Configuration
import OpenAIClient
import Support
import TelegramFrontEnd
import CurlHTTP
import Foundation
import Logging
import SystemPackage

/// The validated configuration of the assistant. Built only through `load`, which checks every value.
public struct AssistantConfig: Sendable {
    public var apiKey: Secret
    public var baseURL: URL
    public var model: String
    public var fallbackModel: String?
    public var systemPrompt: String
    public var temperature: Double
    public var maxOutputTokens: Int
    public var maxHistoryMessages: Int
    public var contextTokens: Int
    public var inputPricePerMillion: Double
    public var outputPricePerMillion: Double
    public var appURL: String?
    public var appName: String?
    public var databasePath: String
    /// A PostgreSQL database instead of SQLite (`DATABASE_URL`, the Cluster build only).
    public var postgres: PostgresLocation?
    /// Replicas on PostgreSQL: how long one that stops its heartbeat (it died, or lost the
    /// database) keeps its chats before the others take them (`REPLICA_TIMEOUT_SECONDS`).
    public var replicaTimeout: Duration
    /// Where /metrics, /healthz and /readyz are served (`METRICS_LISTEN`, the Cluster build only).
    public var metricsListen: ListenAddress?
    /// Where Telegram's webhook posts arrive (`WEBHOOK_LISTEN`, with `TELEGRAM_WEBHOOK_URL`).
    public var webhookListen: ListenAddress?
    var logLevel: Logger.Level
    public var logFile: String?
    public var summarizeHistory: Bool
    /// Turns older than this many days are deleted (`HISTORY_RETENTION_DAYS`); nil keeps everything.
    var historyRetentionDays: Int?
    public var timeouts: LLMTimeouts
    /// A PEM file of CA certificates to trust instead of the system's (`CA_BUNDLE`): for a provider
    /// or Bot API server behind a private CA.
    public var caBundlePath: String?
    /// Images go to the model (`VISION`, default on).
    public var vision: Bool
    /// The largest image kept, in bytes (`IMAGE_MAX_KB`), and the longest side of a photo size
    /// chosen from Telegram's (`IMAGE_MAX_SIDE`).
    public var maxImageBytes: Int
    public var maxImageSide: Int
    /// Voice notes and audio become text here; nil without `TRANSCRIPTION_MODEL`.
    public var transcription: Transcription?
    /// Present when loaded for the Telegram bot (`requireTelegram`).
    public var telegram: TelegramConfig?

    /// The transcription endpoint (`TRANSCRIPTION_*`).
    public struct Transcription: Sendable {
        public var baseURL: URL
        public var apiKey: Secret
        public var model: String
        public var pricePerMinute: Double
        public var maxSeconds: Int
    }

    /// The one HTTP client (one connection pool) for every call the process makes, on `thread`.
    func makeHTTPClient(on thread: EventThread = EventThread()) -> HTTPClient {
        HTTPClient(.init(caBundlePath: caBundlePath), on: thread)
    }

    static let defaultSystemPrompt =
        "You are a helpful, concise assistant. Answer clearly and briefly; use Markdown only when it helps."

    /// Reads the configuration: environment variables first, then the `.env` file (`envFile`, or
    /// `.env` in the working directory when it exists). Throws `ConfigurationError` listing every problem.
    public static func load(environment: [String: String], envFile: String?, requireTelegram: Bool = false) async throws -> AssistantConfig {
        let fileProvider: EnvironmentVariablesProvider
        do {
            fileProvider = try await EnvironmentVariablesProvider(
                environmentFilePath: FilePath(envFile ?? ".env"), allowMissing: envFile == nil)
        } catch {
            throw ConfigurationError(problems: ["cannot read the env file \(envFile ?? ".env"): it does not exist or is not readable"])
        }
        let reader = ConfigReader(providers: [
            EnvironmentVariablesProvider(environmentVariables: environment), fileProvider,
        ])
        return try parse(reader, requireTelegram: requireTelegram)
    }

    /// Validates a set of variables given by name (tests, benchmarks): the same rules as `load`.
    public static func parse(requireTelegram: Bool = false, environment: [String: String]) throws -> AssistantConfig {
        try parse(ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: environment)), requireTelegram: requireTelegram)
    }

    /// Reads and checks every variable; throws `ConfigurationError` listing every problem.
    static func parse(_ reader: ConfigReader, requireTelegram: Bool) throws -> AssistantConfig {
        var values = ConfigValues(reader)
        let apiKey = values.text("OPENAI_API_KEY") ?? ""
        if apiKey.isEmpty { values.problem("OPENAI_API_KEY is required (set it in the environment or in .env)") }

        let allowInsecureHTTP = values.flag("ALLOW_INSECURE_HTTP")
        let baseText = values.text("OPENAI_BASE_URL") ?? "https://openrouter.ai/api/v1"
        let baseURL = endpoint("OPENAI_BASE_URL", baseText, allowInsecureHTTP: allowInsecureHTTP, values: &values)
            ?? URL(string: "https://openrouter.ai/api/v1")!

        let systemPrompt = values.text("OPENAI_SYSTEM_PROMPT") ?? defaultSystemPrompt
        let temperature = values.number("OPENAI_TEMPERATURE", default: 0.4, in: 0...2, describe: "a number between 0 and 2")
        let maxOutput = values.integer("OPENAI_MAX_OUTPUT_TOKENS", default: 1000, in: 1...Int.max, describe: "a whole number of at least 1")
        let maxHistory = values.integer("OPENAI_MAX_HISTORY_MESSAGES", default: 20, in: 1...Int.max, describe: "a whole number of at least 1")
        let contextTokens = values.integer("OPENAI_CONTEXT_TOKENS", default: 8000, in: 1...Int.max, describe: "a whole number of at least 1")
        let price = "a price in USD of 0 or more"
        let inputPrice = values.number("INPUT_PRICE_PER_MILLION", default: 0, in: 0...1_000_000, describe: price)
        let outputPrice = values.number("OUTPUT_PRICE_PER_MILLION", default: 0, in: 0...1_000_000, describe: price)
        let seconds = "a number of seconds above 0"
        let firstByte = values.number("OPENAI_FIRST_BYTE_TIMEOUT", default: 60, in: 0.001...3600, describe: seconds)
        let idle = values.number("OPENAI_IDLE_TIMEOUT", default: 30, in: 0.001...3600, describe: seconds)
        let total = values.number("OPENAI_TOTAL_TIMEOUT", default: 300, in: 0.001...86400, describe: seconds)

        let promptTokens = TokenEstimator.estimate([OpenAI.Message(role: .system, content: systemPrompt)])
        if contextTokens <= maxOutput + promptTokens + 16 {
            values.problem(
                "OPENAI_CONTEXT_TOKENS (\(contextTokens)) must leave room for OPENAI_MAX_OUTPUT_TOKENS (\(maxOutput)), the system prompt (about \(promptTokens) tokens) and a message")
        }

        var logLevel = Logger.Level.info
        if let text = values.text("LOG_LEVEL") {
            if let level = Logger.Level(rawValue: text.lowercased()) {
                logLevel = level
            } else {
                values.problem("LOG_LEVEL must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
            }
        }

        let summarize = values.flag("SUMMARIZE_HISTORY")

        var historyRetentionDays: Int?
        if values.text("HISTORY_RETENTION_DAYS") != nil {
            historyRetentionDays = values.integer("HISTORY_RETENTION_DAYS", default: 0, in: 1...Int.max, describe: "a whole number of at least 1")
        }

        let databasePath: String
        if let path = values.text("DATABASE_PATH") {
            databasePath = path
        } else if let state = values.text("STATE_DIRECTORY")?.split(separator: ":").first {
            databasePath = "\(state)/assistant.sqlite"  // systemd's StateDirectory=
        } else {
            databasePath = "./data/assistant.sqlite"
        }

        let postgres = Self.postgres(&values)
        if postgres == nil, values.text("REPLICA_TIMEOUT_SECONDS") != nil {
            values.problem("REPLICA_TIMEOUT_SECONDS applies only to replicas on PostgreSQL (DATABASE_URL): unset it")
        }
        let replicaTimeout = values.integer(
            "REPLICA_TIMEOUT_SECONDS", default: 15, in: 3...600, describe: "a number of seconds from 3 to 600")
        let metricsListen = Self.listenAddress("METRICS_LISTEN", example: "9464", &values)
        let webhookListen = Self.listenAddress("WEBHOOK_LISTEN", example: "8443", &values)

        let caBundle = values.text("CA_BUNDLE")
        if let caBundle, !FileManager.default.isReadableFile(atPath: caBundle) {
            values.problem("CA_BUNDLE is \"\(caBundle)\", which is not a readable file (a PEM file of CA certificates)")
        }

        let vision = values.flag("VISION", default: true)
        let maxImageBytes = values.integer("IMAGE_MAX_KB", default: 5_120, in: 16...20_480, describe: "a number of kilobytes from 16 to 20480") * 1024
        let maxImageSide = values.integer("IMAGE_MAX_SIDE", default: 2_048, in: 90...10_000, describe: "a number of pixels from 90 to 10000")
        var transcription: Transcription?
        let transcriptionPrice = values.number("TRANSCRIPTION_PRICE_PER_MINUTE", default: 0, in: 0...1_000, describe: price)
        let transcriptionMax = values.integer(
            "TRANSCRIPTION_MAX_SECONDS", default: 600, in: 1...86_400, describe: "a number of seconds from 1 to 86400")
        if let model = values.text("TRANSCRIPTION_MODEL") {
            let text = values.text("TRANSCRIPTION_BASE_URL")
            let url = text.map { endpoint("TRANSCRIPTION_BASE_URL", $0, allowInsecureHTTP: allowInsecureHTTP, values: &values) } ?? baseURL
            transcription = Transcription(
                baseURL: url ?? baseURL, apiKey: Secret(values.text("TRANSCRIPTION_API_KEY") ?? apiKey), model: model,
                pricePerMinute: transcriptionPrice, maxSeconds: transcriptionMax)
        }

        let telegram = requireTelegram ? TelegramConfig.parse(&values, allowInsecureHTTP: allowInsecureHTTP) : nil

        guard values.problems.isEmpty else { throw ConfigurationError(problems: values.problems) }
        return AssistantConfig(
            apiKey: Secret(apiKey), baseURL: baseURL, model: values.text("OPENAI_MODEL") ?? "openai/gpt-5-nano",
            fallbackModel: values.text("OPENAI_FALLBACK_MODEL"), systemPrompt: systemPrompt, temperature: temperature,
            maxOutputTokens: maxOutput, maxHistoryMessages: maxHistory, contextTokens: contextTokens,
            inputPricePerMillion: inputPrice, outputPricePerMillion: outputPrice,
            appURL: values.text("APP_URL"), appName: values.text("APP_NAME"), databasePath: databasePath, postgres: postgres,
            replicaTimeout: .seconds(replicaTimeout), metricsListen: metricsListen, webhookListen: webhookListen,
            logLevel: logLevel,
            logFile: values.text("LOG_FILE"), summarizeHistory: summarize, historyRetentionDays: historyRetentionDays,
            timeouts: LLMTimeouts(
                firstByte: .milliseconds(Int64(firstByte * 1000)), idle: .milliseconds(Int64(idle * 1000)),
                total: .milliseconds(Int64(total * 1000))),
            caBundlePath: caBundle, vision: vision, maxImageBytes: maxImageBytes, maxImageSide: maxImageSide, transcription: transcription,
            telegram: telegram)
    }

    /// A listener's `HOST:PORT`, which only the Cluster build can serve.
    static func listenAddress(_ name: String, example port: String, _ values: inout ConfigValues) -> ListenAddress? {
        guard let text = values.text(name) else { return nil }
        guard let address = ListenAddress(text) else {
            values.problem("\(name) must be HOST:PORT (127.0.0.1:\(port), [::]:\(port), :\(port)), not \"\(text)\"")
            return nil
        }
        #if !Cluster
            values.problem("\(name) needs the Cluster build: build with `swift build -c release --traits Cluster`, or unset it")
        #endif
        return address
    }

    /// `DATABASE_URL`: a PostgreSQL database, which only the Cluster build can use.
    static func postgres(_ values: inout ConfigValues) -> PostgresLocation? {
        guard let text = values.text("DATABASE_URL") else { return nil }
        if values.text("DATABASE_PATH") != nil {
            values.problem("DATABASE_URL and DATABASE_PATH are both set: DATABASE_URL is PostgreSQL, DATABASE_PATH is SQLite; keep one")
        }
        do {
            let location = try PostgresLocation(url: text)
            #if !Cluster
                values.problem(
                    "DATABASE_URL is PostgreSQL, which this build does not include: build with `swift build -c release --traits Cluster`, or unset it to use SQLite at DATABASE_PATH")
            #endif
            return location
        } catch {
            values.problem(error.description)
            return nil
        }
    }

    /// Checks an endpoint URL. Plain http:// sends the token or key in clear, so it is accepted only
    /// for loopback (a local llama.cpp, Ollama or Bot API server) unless `ALLOW_INSECURE_HTTP=true`.
    static func endpoint(_ name: String, _ text: String, allowInsecureHTTP: Bool, values: inout ConfigValues) -> URL? {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty
        else {
            values.problem("\(name) must be an http:// or https:// URL, got \"\(text)\"")
            return nil
        }
        if scheme == "http", !allowInsecureHTTP, !isLoopback(host) {
            values.problem(
                "\(name) uses plain http:// to \(host), which would send secrets in clear: use https://, or set ALLOW_INSECURE_HTTP=true for a trusted network")
            return nil
        }
        return url
    }

    /// `localhost`, 127.0.0.0/8 and ::1.
    static func isLoopback(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if bare == "localhost" || bare == "::1" { return true }
        let octets = bare.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// The configuration as `NAME=value` lines with secrets masked, for `check` and start-up logs.
    var redactedSummary: [(name: String, value: String)] {
        let retention = historyRetentionDays.map { String($0) } ?? "(keep everything)"
        let database: (name: String, value: String) =
            if let postgres { ("DATABASE_URL", postgres.description + (postgres.password == nil ? "" : " (password ••••)")) } else {
                ("DATABASE_PATH", databasePath)
            }
        let metrics = metricsListen?.description ?? "(off)"
        let lines: [(name: String, value: String)] = [
            ("OPENAI_API_KEY", Self.mask(apiKey.value)),
            ("OPENAI_BASE_URL", baseURL.absoluteString),
            ("OPENAI_MODEL", model),
            ("OPENAI_FALLBACK_MODEL", fallbackModel ?? "(none)"),
            ("OPENAI_TEMPERATURE", String(temperature)),
            ("OPENAI_MAX_OUTPUT_TOKENS", String(maxOutputTokens)),
            ("OPENAI_MAX_HISTORY_MESSAGES", String(maxHistoryMessages)),
            ("OPENAI_CONTEXT_TOKENS", String(contextTokens)),
            ("SUMMARIZE_HISTORY", String(summarizeHistory)),
            ("HISTORY_RETENTION_DAYS", retention),
            database,
            ("REPLICA_TIMEOUT_SECONDS", postgres == nil ? "(one process: SQLite)" : String(replicaTimeout.components.seconds)),
            ("LOG_LEVEL", logLevel.rawValue),
            ("METRICS_LISTEN", metrics),
            ("WEBHOOK_LISTEN", webhookListen?.description ?? "(off: long polling)"),
            ("VISION", vision ? "on" : "off"),
            ("IMAGE_MAX_KB", String(maxImageBytes / 1024)),
            ("IMAGE_MAX_SIDE", String(maxImageSide)),
            ("TRANSCRIPTION_MODEL", transcription?.model ?? "(not set: voice messages are refused)"),
        ] + (transcription.map { transcription -> [(name: String, value: String)] in
            [
                ("TRANSCRIPTION_BASE_URL", transcription.baseURL.absoluteString),
                ("TRANSCRIPTION_API_KEY", Self.mask(transcription.apiKey.value)),
                ("TRANSCRIPTION_MAX_SECONDS", String(transcription.maxSeconds)),
                ("TRANSCRIPTION_PRICE_PER_MINUTE", String(transcription.pricePerMinute)),
            ]
        } ?? [])
        return lines + (telegram.map { telegram -> [(name: String, value: String)] in
            [
                ("TELEGRAM_BOT_TOKEN", Self.mask(telegram.token.value)),
                ("TELEGRAM_API_URL", telegram.apiURL.absoluteString),
                ("ALLOWED_USER_IDS", telegram.allowedUserIDs.isEmpty ? "(everyone)" : telegram.allowedUserIDs.sorted().map(String.init).joined(separator: ",")),
                ("MAX_CONCURRENT_REPLIES", String(telegram.maxConcurrentReplies)),
                ("TEXT_FILE_MAX_KB", String(telegram.maxTextFileBytes / 1024)),
            ]
        } ?? [])
    }

    /// Shows that a secret is set without showing it.
    static func mask(_ secret: String) -> String {
        secret.isEmpty ? "(not set)" : "•••• (\(secret.count) characters)"
    }
}
