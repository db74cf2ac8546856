import Foundation
import Testing

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import Support
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd
@testable import TerminalFrontEnd

@Suite(.timeLimit(.minutes(2))) struct ConfigurationTests {
    func parse(_ values: [String: String]) throws -> AssistantConfig {
        try AssistantConfig.parse(environment: values)
    }

    @Test func appliesTheDocumentedDefaults() throws {
        let config = try parse(["OPENAI_API_KEY": "k"])
        #expect(config.baseURL.absoluteString == "https://openrouter.ai/api/v1")
        #expect(config.model == "openai/gpt-5-nano")
        #expect(config.fallbackModel == nil)
        #expect(config.systemPrompt == AssistantConfig.defaultSystemPrompt)
        #expect(config.temperature == 0.4)
        #expect(config.maxOutputTokens == 1000)
        #expect(config.maxHistoryMessages == 20)
        #expect(config.contextTokens == 8000)
        #expect(config.inputPricePerMillion == 0)
        #expect(config.outputPricePerMillion == 0)
        #expect(config.databasePath == "./data/assistant.sqlite")
        #expect(config.logLevel == .info)
        #expect(config.summarizeHistory == false)
        #expect(config.timeouts == LLMTimeouts(firstByte: .seconds(60), idle: .seconds(30), total: .seconds(300)))
    }

    /// The example env file, as shipped, is valid and means the defaults (media included).
    @Test func theExampleEnvFileIsValid() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let config = try await AssistantConfig.load(
            environment: ["OPENAI_API_KEY": "k", "TELEGRAM_BOT_TOKEN": "123456:AAbcdefghijklmnopqrstuvwxyz"], envFile: root.appendingPathComponent(".env.example").path,
            requireTelegram: true)
        #expect(config.vision && config.maxImageBytes == 5_120 * 1024 && config.maxImageSide == 2_048)
        #expect(config.transcription == nil, "voice is off until a transcription model is set")
        let voice = try AssistantConfig.parse(environment: [
            "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "https://api.example.com/v1", "TRANSCRIPTION_MODEL": "whisper-1",
        ])
        #expect(voice.transcription?.baseURL.absoluteString == "https://api.example.com/v1")
        #expect(voice.transcription?.apiKey.value == "k")
        #expect(throws: ConfigurationError.self) {
            try AssistantConfig.parse(environment: [
                "OPENAI_API_KEY": "k", "TRANSCRIPTION_MODEL": "w", "TRANSCRIPTION_BASE_URL": "http://10.0.0.5/v1", "VISION": "sometimes",
            ])
        }
    }

    @Test func listsEveryProblemAtOnce() {
        let values = [
            "OPENAI_TEMPERATURE": "hot", "OPENAI_MAX_OUTPUT_TOKENS": "-5", "OPENAI_BASE_URL": "ftp://nowhere",
            "LOG_LEVEL": "loud", "SUMMARIZE_HISTORY": "maybe", "INPUT_PRICE_PER_MILLION": "free",
        ]
        #expect {
            try parse(values)
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            let text = error.description
            return error.problems.count == 7
                && text.contains("OPENAI_API_KEY is required")
                && text.contains(#"OPENAI_TEMPERATURE must be a number between 0 and 2, got "hot""#)
                && text.contains(#"OPENAI_MAX_OUTPUT_TOKENS must be a whole number of at least 1, got "-5""#)
                && text.contains(#"OPENAI_BASE_URL must be an http:// or https:// URL, got "ftp://nowhere""#)
                && text.contains("LOG_LEVEL must be one of")
                && text.contains("SUMMARIZE_HISTORY must be on or off")
                && text.contains("INPUT_PRICE_PER_MILLION")
        }
    }

    @Test func theContextMustLeaveRoomForTheAnswer() {
        #expect {
            try parse(["OPENAI_API_KEY": "k", "OPENAI_CONTEXT_TOKENS": "1000", "OPENAI_MAX_OUTPUT_TOKENS": "1000"])
        } throws: { "\($0)".contains("OPENAI_CONTEXT_TOKENS (1000) must leave room") }
    }

    @Test func numbersAndSwitchesAcceptTheUsualSpellings() throws {
        let config = try parse([
            "OPENAI_API_KEY": "k", "OPENAI_TEMPERATURE": "'0.7'", "OPENAI_MAX_OUTPUT_TOKENS": " 900 ", "SUMMARIZE_HISTORY": "on",
            "ALLOW_INSECURE_HTTP": "no",
        ])
        #expect(config.temperature == 0.7)
        #expect(config.maxOutputTokens == 900)
        #expect(config.summarizeHistory)
    }

    @Test func blankValuesCountAsUnsetAndQuotesAreStripped() throws {
        let config = try parse(["OPENAI_API_KEY": "\"k\"", "OPENAI_MODEL": "  ", "OPENAI_FALLBACK_MODEL": "'backup'"])
        #expect(config.apiKey.value == "k")
        #expect(config.model == "openai/gpt-5-nano")
        #expect(config.fallbackModel == "backup")
    }

    @Test func systemdStateDirectoryHoldsTheDatabase() throws {
        let config = try parse(["OPENAI_API_KEY": "k", "STATE_DIRECTORY": "/var/lib/telegram-assistant"])
        #expect(config.databasePath == "/var/lib/telegram-assistant/assistant.sqlite")
        let explicit = try parse(["OPENAI_API_KEY": "k", "STATE_DIRECTORY": "/var/lib/x", "DATABASE_PATH": "/srv/a.sqlite"])
        #expect(explicit.databasePath == "/srv/a.sqlite")
    }

    /// `DATABASE_URL` is read in every build, so that a wrong one fails at start with the rest;
    /// the password never comes back in a message or the summary.
    @Test func aDatabaseURLIsCheckedAndNeverShowsItsPassword() throws {
        let location = try PostgresLocation(url: "postgresql://bot:s%40cret@db.internal:6432/assistant?sslmode=verify-full&schema=bot_one")
        #expect(location == PostgresLocation(host: "db.internal", port: 6432, user: "bot", password: "s@cret", database: "assistant", tls: .verifyFull, schema: "bot_one"))
        #expect(location.description == "postgres://bot@db.internal:6432/assistant?sslmode=verify-full&schema=bot_one")
        let socket = try PostgresLocation(url: "postgres://bot@/assistant?host=/run/postgresql")
        #expect(socket.unixSocketPath == "/run/postgresql/.s.PGSQL.5432")
        let wrong = [
            "mysql://bot:pw@db/assistant": "must look like postgres://",
            "postgres://bot:pw@db": "must name one database",
            "postgres://:pw@db/assistant": "no user name",
            "postgres://bot:pw@db/assistant?sslmode=always": "sslmode must be one of disable, prefer, require, verify-full",
            "postgres://bot:pw@db/assistant?schema=Bot-1": "schema must be lower-case letters",
            "postgres://bot:pw@db/assistant?timeout=3": "unknown parameter timeout",
        ]
        for (url, problem) in wrong {
            let error = #expect(throws: ConfigurationError.self) { try parse(["OPENAI_API_KEY": "k", "DATABASE_URL": url]) }
            #expect(error?.problems.count == 1 && error?.problems.first?.contains(problem) == true, "\(url): \(error?.problems ?? [])")
            #expect(error.map { !"\($0)".contains("pw") } == true)
        }
        let both = #expect(throws: ConfigurationError.self) {
            try parse(["OPENAI_API_KEY": "k", "DATABASE_URL": "postgres://bot@db/assistant", "DATABASE_PATH": "/srv/a.sqlite"])
        }
        #expect(both?.problems.contains { $0.contains("DATABASE_URL and DATABASE_PATH are both set") } == true)
        #if Cluster
            let config = try parse(["OPENAI_API_KEY": "k", "DATABASE_URL": "postgres://bot:pw@db/assistant"])
            #expect(config.postgres?.password == "pw")
            let summary = config.redactedSummary.map { "\($0.name)=\($0.value)" }.joined(separator: "\n")
            #expect(summary.contains("DATABASE_URL=postgres://bot@db:5432/assistant (password ••••)") && !summary.contains("pw"))
        #else
            let error = #expect(throws: ConfigurationError.self) { try parse(["OPENAI_API_KEY": "k", "DATABASE_URL": "postgres://bot:pw@db/assistant"]) }
            #expect(error?.problems == [
                "DATABASE_URL is PostgreSQL, which this build does not include: build with `swift build -c release --traits Cluster`, or unset it to use SQLite at DATABASE_PATH"
            ])
        #endif
    }

    /// The replicas' timeout: only with PostgreSQL, and within bounds.
    @Test func aReplicaTimeoutNeedsPostgreSQLAndABoundedValue() throws {
        let alone = #expect(throws: ConfigurationError.self) { try parse(["OPENAI_API_KEY": "k", "REPLICA_TIMEOUT_SECONDS": "10"]) }
        #expect(alone?.problems.contains { $0.contains("REPLICA_TIMEOUT_SECONDS applies only to replicas on PostgreSQL") } == true)
        #expect(try parse(["OPENAI_API_KEY": "k"]).replicaTimeout == .seconds(15))
        #if Cluster
            let url = "postgres://bot@db/assistant"
            #expect(try parse(["OPENAI_API_KEY": "k", "DATABASE_URL": url, "REPLICA_TIMEOUT_SECONDS": "6"]).replicaTimeout == .seconds(6))
            for wrong in ["2", "601", "soon"] {
                let error = #expect(throws: ConfigurationError.self) {
                    try parse(["OPENAI_API_KEY": "k", "DATABASE_URL": url, "REPLICA_TIMEOUT_SECONDS": wrong])
                }
                #expect(error?.problems.contains { $0.contains("REPLICA_TIMEOUT_SECONDS") && $0.contains("from 3 to 600") } == true, "\(wrong)")
            }
        #endif
    }

    @Test func aMetricsListenerIsHostAndPort() throws {
        #expect(ListenAddress("127.0.0.1:9464") == ListenAddress("127.0.0.1:9464"))
        #expect(ListenAddress(":9464")?.description == "0.0.0.0:9464")
        #expect(ListenAddress("[::1]:9464")?.host == "::1")
        #expect(ListenAddress("[::1]:9464")?.description == "[::1]:9464")
        for wrong in ["9464", "::1:9464", "host:", "host:70000", "[]:1", "[::1:9464"] { #expect(ListenAddress(wrong) == nil, "\(wrong)") }
        let error = #expect(throws: ConfigurationError.self) { try parse(["OPENAI_API_KEY": "k", "METRICS_LISTEN": "localhost"]) }
        #expect(error?.problems == ["METRICS_LISTEN must be HOST:PORT (127.0.0.1:9464, [::]:9464, :9464), not \"localhost\""])
        #if Cluster
            #expect(try parse(["OPENAI_API_KEY": "k", "METRICS_LISTEN": "127.0.0.1:9464"]).metricsListen?.port == 9464)
        #else
            let refused = #expect(throws: ConfigurationError.self) { try parse(["OPENAI_API_KEY": "k", "METRICS_LISTEN": "127.0.0.1:9464"]) }
            #expect(refused?.problems.first?.hasPrefix("METRICS_LISTEN needs the Cluster build") == true)
        #endif
    }

    @Test func webhookModeNeedsItsListenerAndSecret() throws {
        let base = ["OPENAI_API_KEY": "k", "TELEGRAM_BOT_TOKEN": "123456:AAbcdefghijklmnopqrstuvwxyz"]
        func problems(_ extra: [String: String]) -> [String] {
            (try? AssistantConfig.parse(requireTelegram: true, environment: base.merging(extra) { $1 })).map { _ in [] }
                ?? ((#expect(throws: ConfigurationError.self) { try AssistantConfig.parse(requireTelegram: true, environment: base.merging(extra) { $1 }) })?
                    .problems ?? [])
        }
        let missing = problems(["TELEGRAM_WEBHOOK_URL": "https://bot.example.com/hook"])
        #expect(missing.contains { $0.hasPrefix("TELEGRAM_WEBHOOK_URL needs WEBHOOK_LISTEN") })
        #expect(missing.contains { $0.hasPrefix("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET") })
        let badSecret = problems(["TELEGRAM_WEBHOOK_URL": "https://bot.example.com/hook", "WEBHOOK_LISTEN": ":8443", "TELEGRAM_WEBHOOK_SECRET": "no spaces!"])
        #expect(badSecret.contains("TELEGRAM_WEBHOOK_SECRET must be 1-256 of A-Z, a-z, 0-9, _ and - (Telegram's rule)"))
        #expect(!badSecret.joined().contains("no spaces!"), "the secret is not repeated")
        #expect(problems(["WEBHOOK_LISTEN": ":8443"]).contains { $0.hasPrefix("WEBHOOK_LISTEN is set but TELEGRAM_WEBHOOK_URL is not") })
        #expect(problems(["TELEGRAM_WEBHOOK_URL": "http://bot.example.com/hook", "WEBHOOK_LISTEN": ":8443", "TELEGRAM_WEBHOOK_SECRET": "s"])
            .contains { $0.contains("TELEGRAM_WEBHOOK_URL uses plain http://") })
        let good = ["TELEGRAM_WEBHOOK_URL": "https://bot.example.com/hook", "WEBHOOK_LISTEN": "127.0.0.1:8443", "TELEGRAM_WEBHOOK_SECRET": "s3cret"]
        #if Cluster
            let config = try AssistantConfig.parse(requireTelegram: true, environment: base.merging(good) { $1 })
            #expect(config.telegram?.webhook?.url.path == "/hook" && config.telegram?.webhook?.maxConnections == 40)
            #expect(config.webhookListen == ListenAddress("127.0.0.1:8443"))
        #else
            #expect(problems(good).contains { $0.hasPrefix("TELEGRAM_WEBHOOK_URL needs the Cluster build") })
        #endif
    }

    @Test func environmentOverridesTheEnvFile() async throws {
        let directory = TemporaryDirectory()
        let file = directory.path + "/test.env"
        try """
            # comment
            OPENAI_API_KEY=from-file
            OPENAI_MODEL=file-model
            OPENAI_TEMPERATURE=1.5
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let config = try await AssistantConfig.load(environment: ["OPENAI_MODEL": "env-model"], envFile: file)
        #expect(config.apiKey.value == "from-file")
        #expect(config.model == "env-model")
        #expect(config.temperature == 1.5)
    }

    @Test func aNamedEnvFileThatIsMissingIsAnError() async {
        await #expect {
            try await AssistantConfig.load(environment: ["OPENAI_API_KEY": "k"], envFile: "/nonexistent/assistant.env")
        } throws: { "\($0)".contains("/nonexistent/assistant.env") }
    }

    @Test func theSummaryMasksSecrets() throws {
        let config = try parse(["OPENAI_API_KEY": "sk-very-secret"])
        let lines = config.redactedSummary.map { "\($0.name)=\($0.value)" }.joined(separator: "\n")
        #expect(!lines.contains("sk-very-secret"))
        #expect(lines.contains("OPENAI_API_KEY=•••• (14 characters)"))
    }

    /// A remote http:// endpoint would carry the bot token or the API key in clear.
    @Test func plainHTTPIsRefusedForRemoteHostsUnlessAllowed() throws {
        let base = ["OPENAI_API_KEY": "k", "TELEGRAM_BOT_TOKEN": "123456:AAbcdefghijklmnopqrstuvwxyz"]
        for remote in ["http://api.example.com/v1", "http://10.0.0.5:8080/v1", "HTTP://example.org"] {
            #expect(throws: ConfigurationError.self) { try AssistantConfig.parse(environment: base.merging(["OPENAI_BASE_URL": remote]) { $1 }) }
            #expect(throws: ConfigurationError.self) {
                try AssistantConfig.parse(requireTelegram: true, environment: base.merging(["TELEGRAM_API_URL": remote]) { $1 })
            }
        }
        do {
            _ = try AssistantConfig.parse(environment: base.merging(["OPENAI_BASE_URL": "http://api.example.com/v1"]) { $1 })
        } catch let error as ConfigurationError {
            #expect(error.problems.contains { $0.contains("OPENAI_BASE_URL") && $0.contains("ALLOW_INSECURE_HTTP") })
        }
        for local in ["http://127.0.0.1:8080/v1", "http://localhost:11434/v1", "http://[::1]:8080/v1", "http://127.1.2.3/v1"] {
            let config = try AssistantConfig.parse(requireTelegram: true, environment: base.merging(["OPENAI_BASE_URL": local, "TELEGRAM_API_URL": local]) { $1 })
            #expect(config.baseURL.absoluteString == local)
        }
        let allowed = try AssistantConfig.parse(requireTelegram: true, environment: base.merging(["OPENAI_BASE_URL": "http://gpu-box.lan:8000/v1", "TELEGRAM_API_URL": "http://bot-api.lan:8081", "ALLOW_INSECURE_HTTP": "true"]) { $1 })
        #expect(allowed.telegram?.apiURL.host == "bot-api.lan")
    }

    @Test func aCABundleMustBeAReadableFile() throws {
        let base = ["OPENAI_API_KEY": "k"]
        let error = #expect(throws: ConfigurationError.self) {
            try AssistantConfig.parse(environment: base.merging(["CA_BUNDLE": "/nonexistent/ca.pem"]) { $1 })
        }
        #expect(error?.problems == ["CA_BUNDLE is \"/nonexistent/ca.pem\", which is not a readable file (a PEM file of CA certificates)"])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ca-\(UUID().uuidString).pem").path
        try Data("-----BEGIN CERTIFICATE-----\n".utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try AssistantConfig.parse(environment: base.merging(["CA_BUNDLE": file]) { $1 }).caBundlePath == file)
    }
}
