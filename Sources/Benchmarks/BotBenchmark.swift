import AssistantStore
import Conversation
import Foundation
import Logging
import OpenAIClient
import Support
import TelegramAssistant
import TelegramBotAPI
import TelegramFrontEnd
import TestSupport

/// The whole bot (poller, router, sessions, scheduler, streaming, SQLite) against the fake Telegram
/// and OpenAI servers with Telegram's real flood limits.
enum BotBenchmark {
    static func run() async throws -> [Benchmarks.Row] {
        var rows: [Benchmarks.Row] = []
        rows += try await latency()
        rows += try await burst(chats: 200)
        return rows
    }

    struct Setup {
        let llm: FakeOpenAIServer
        let telegram: FakeTelegramServer
        let bot: TelegramBot
        let logger: Logger
    }

    static func setUp() async throws -> Setup {
        let llm = try FakeOpenAIServer()
        let telegram = try FakeTelegramServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)").path
        let values = [
            "OPENAI_API_KEY": llm.settings.apiKey, "OPENAI_BASE_URL": llm.baseURL.absoluteString, "OPENAI_MODEL": "bench",
            "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.baseURL.absoluteString,
            "TELEGRAM_POLL_TIMEOUT": "5", "DATABASE_PATH": directory + "/bench.sqlite", "MAX_CONCURRENT_REPLIES": ProcessInfo.processInfo.environment["BENCH_CONCURRENCY"] ?? "32",
            "USER_RATE_LIMIT_PER_MINUTE": "1000",
        ]
        let config = try AssistantConfig.parse(requireTelegram: true, environment: values)
        let logger = Assistant.makeLogger(label: "bench", level: .warning, sink: try LogSink(appendingTo: "/dev/null"))
        let assistant = try Assistant(config: config, logger: logger)
        let bot = try await assistant.connectBot()
        return Setup(llm: llm, telegram: telegram, bot: bot, logger: logger)
    }

    static let answer = String(repeating: "Streaming **answers** word by word. ", count: 25)

    /// One chat, messages one after another: what the bot adds to each step of a reply.
    static func latency() async throws -> [Benchmarks.Row] {
        let setup = try await setUp()
        let count = 20
        for _ in 0..<count { setup.llm.enqueue(.answer(answer, chunkSize: 64, pause: .milliseconds(5))) }
        var added: [Double] = []
        var visible: [Double] = []
        try await withBot(setup) {
            for index in 0..<count {
                let sent = ContinuousClock.now
                setup.telegram.deliverText("question \(index)", chatID: 77, messageID: index + 1)
                while setup.telegram.visibleMessages(chatID: 77).count < index + 1 { try await Task.sleep(for: .milliseconds(1)) }
                let request = setup.llm.requests[index]
                added.append(Benchmarks.milliseconds(request.receivedAt - sent))
                if let firstShown = setup.telegram.calls.first(where: {
                    ($0.method == "sendMessageDraft" || $0.method == "sendMessage") && $0.status == 200 && $0.at > request.receivedAt
                }) {
                    visible.append(Benchmarks.milliseconds(firstShown.at - request.receivedAt))
                }
                // Let the chat's one-message-per-second budget recover so every reply starts alike.
                try await Task.sleep(for: .milliseconds(1100))
            }
        }
        added.sort()
        visible.sort()
        return [
            .init(name: "update → LLM request sent p50", value: added[added.count / 2], unit: "ms", note: "fake Telegram hands out the update → fake LLM has the request"),
            .init(name: "update → LLM request sent max", value: added.last ?? 0, unit: "ms", note: "\(count) sequential messages"),
            .init(name: "LLM request → first visible draft p50", value: visible[visible.count / 2], unit: "ms", note: "includes the fake model's first chunk"),
        ]
    }

    /// Many chats at once under Telegram's real limits.
    static func burst(chats: Int) async throws -> [Benchmarks.Row] {
        let setup = try await setUp()
        for _ in 0..<chats { setup.llm.enqueue(.answer(answer, chunkSize: 64, pause: .milliseconds(5))) }
        let cpuStart = Benchmarks.cpuSeconds()
        let start = ContinuousClock.now
        try await withBot(setup) {
            for chat in 0..<chats { setup.telegram.deliverText("hello", chatID: Int64(1000 + chat)) }
            while (0..<chats).contains(where: { setup.telegram.visibleMessages(chatID: Int64(1000 + $0)).isEmpty }) {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        let wall = Benchmarks.milliseconds(ContinuousClock.now - start)
        let cpu = Benchmarks.cpuSeconds() - cpuStart
        let visibleCalls = setup.telegram.calls.filter { ["sendMessage", "editMessageText", "sendMessageDraft"].contains($0.method) }.count
        return [
            .init(name: "\(chats) chats at once: all answered", value: wall / 1000, unit: "s", note: "Telegram's real limits: 30 msg/s overall"),
            .init(name: "replies per CPU-second", value: Double(chats) / cpu, unit: "replies", note: "bot and both fakes in one process"),
            .init(name: "Telegram calls per reply", value: Double(setup.telegram.calls.count - 4) / Double(chats), unit: "calls", note: "\(Double(visibleCalls) / Double(chats)) visible (drafts/sends/edits), rest typing"),
            .init(name: "429s provoked", value: Double(setup.telegram.tooManyRequests), unit: "", note: "must be 0"),
        ]
    }

    static func withBot(_ setup: Setup, _ body: () async throws -> Void) async throws {
        let (bot, logger) = (setup.bot, setup.logger)
        let running = Task { try await bot.serviceGroup(logger: logger).run() }
        try await body()
        running.cancel()
        _ = await running.result
    }
}
