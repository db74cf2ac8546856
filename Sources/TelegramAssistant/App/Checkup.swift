import AssistantStore
import CurlHTTP
import Foundation
import Logging
import OpenAIClient
import TelegramBotAPI
import TelegramFrontEnd

/// `telegram-assistant check`: everything the bot needs, verified once, with a readable report.
struct Checkup: Sendable {
    struct Result: Sendable {
        var name: String
        var passed: Bool
        var detail: String
    }

    let config: AssistantConfig
    let http: HTTPClient
    let clock: any Clock<Duration>

    init(config: AssistantConfig, http: HTTPClient? = nil, clock: any Clock<Duration>) {
        self.config = config
        self.http = http ?? config.makeHTTPClient()
        self.clock = clock
    }

    func run() async -> [Result] {
        var results: [Result] = []
        results.append(await database())
        if let telegram = config.telegram { results.append(await self.telegram(telegram)) }
        results.append(await modelProvider())
        return results
    }

    /// The report: one line per check, secrets masked, then a verdict.
    static func report(_ results: [Result], config: AssistantConfig) -> String {
        var lines = ["Configuration:"]
        lines += config.redactedSummary.map { "  \($0.name)=\($0.value)" }
        lines.append("")
        lines += results.map { "\($0.passed ? "ok  " : "FAIL") \($0.name): \($0.detail)" }
        lines.append("")
        lines.append(results.allSatisfy(\.passed) ? "All checks passed." : "Some checks failed.")
        return lines.joined(separator: "\n")
    }

    func database() async -> Result {
        do {
            let store = try await Assistant.openStore(config, logger: Logger(label: "check", factory: { _ in SwiftLogNoOpLogHandler() }))
            let migrations = try await store.appliedMigrations().count
            return Result(name: "database", passed: true, detail: "\(Assistant.databaseName(config)) is writable (\(migrations) migrations applied)")
        } catch {
            return Result(name: "database", passed: false, detail: "\(error)")
        }
    }

    func telegram(_ telegram: TelegramConfig) async -> Result {
        let client = BotAPIClient(baseURL: telegram.apiURL, token: telegram.token, http: http)
        do {
            let me = try await client.getMe()
            return Result(name: "telegram", passed: true, detail: "the token belongs to @\(me.username ?? "?")")
        } catch TelegramError.unauthorized {
            return Result(name: "telegram", passed: false, detail: "TELEGRAM_BOT_TOKEN was rejected by Telegram")
        } catch let error as TelegramError {
            return Result(name: "telegram", passed: false, detail: "could not reach \(telegram.apiURL.host ?? "the Bot API"): \(error.errorType)")
        } catch {
            return Result(name: "telegram", passed: false, detail: "\(error)")
        }
    }

    /// Lists the models where the server serves `/models`; otherwise asks for a one-token completion.
    func modelProvider() async -> Result {
        let client = Assistant.modelClient(config, http: http)
        let wanted = [config.model] + (config.fallbackModel.map { [$0] } ?? [])
        do {
            let models = try await client.listModels()
            let missing = wanted.filter { !models.isEmpty && !models.contains($0) }
            guard missing.isEmpty else {
                return Result(
                    name: "model provider", passed: false,
                    detail: "\(config.baseURL.absoluteString) does not list \(missing.joined(separator: ", ")) (it lists \(models.count) models)")
            }
            return Result(name: "model provider", passed: true, detail: "\(config.baseURL.absoluteString) lists \(wanted.joined(separator: ", "))")
        } catch LLMError.modelNotFound, LLMError.unexpectedStatus(405), LLMError.server(status: 501) {
            return await oneTokenCompletion(client)  // no /models endpoint here (404, 405 or 501)
        } catch let error as LLMError {
            return Result(name: "model provider", passed: false, detail: Self.describe(error))
        } catch {
            return Result(name: "model provider", passed: false, detail: "\(error)")
        }
    }

    func oneTokenCompletion(_ client: ChatCompletionsClient) async -> Result {
        let runner = CompletionRunner(
            client: client, policy: RetryPolicy(maxAttempts: 1), timeouts: LLMTimeouts(firstByte: .seconds(30), idle: .seconds(30), total: .seconds(60)),
            clock: clock, deadlineClock: clock)
        let request = CompletionRequest(
            messages: [OpenAI.Message(role: .user, content: "Say OK.")], model: config.model, fallbackModel: nil, temperature: 0,
            maxOutputTokens: 1)
        do {
            _ = try await runner.complete(request) { _ in }
            return Result(name: "model provider", passed: true, detail: "\(config.model) answered a one-token request")
        } catch let failure as CompletionFailure {
            return Result(name: "model provider", passed: false, detail: Self.describe(failure.error))
        } catch {
            return Result(name: "model provider", passed: false, detail: "\(error)")
        }
    }

    static func describe(_ error: LLMError) -> String {
        switch error {
        case .unauthorized: "OPENAI_API_KEY was rejected (\(error.errorType))"
        case .modelNotFound: "the model is not served (\(error.errorType))"
        default: "the endpoint failed: \(error.errorType)"
        }
    }
}
