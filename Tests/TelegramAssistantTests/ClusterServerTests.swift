#if Cluster
import CurlHTTP
import Foundation
import Logging
import Testing
import TestSupport

@testable import AssistantStore
@testable import ClusterServer
@testable import TelegramAssistant
@testable import TelegramFrontEnd

/// /metrics, /healthz and /readyz (the Cluster build), over real HTTP.
@Suite(.timeLimit(.minutes(2))) struct ClusterServerTests {
    /// Starts `server`'s listener on a free port while `body` runs.
    static func serving(
        metrics: BotMetrics, status: StatusReporter, leases: ChatLeases? = nil, store: any Store, _ body: @Sendable (URL) async throws -> Void
    ) async throws {
        let (ports, port) = AsyncStream.makeStream(of: Int.self)
        let server = ClusterServer(
            host: "127.0.0.1", port: 0, metrics: metrics, status: status, leases: leases, store: store, logger: try LogCapture().logger,
            onListening: { port.yield($0) })
        let running = Task { try await server.run() }
        defer { running.cancel() }
        var iterator = ports.makeAsyncIterator()
        let bound = try #require(await iterator.next())
        try await body(URL(string: "http://127.0.0.1:\(bound)")!)
    }

    static func get(_ base: URL, _ path: String) async throws -> (status: Int, text: String) {
        let response = try await HTTPClient().fetch(HTTPRequest(url: base.appending(path: path)), deadline: .seconds(10))
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    /// Health follows the polling loop and readiness also Telegram's answers and the database,
    /// on an injected clock.
    @Test func healthAndReadinessFollowTheBotsState() async throws {
        let clock = RecordingClock()
        let status = StatusReporter(notifier: SystemdNotifier(environment: [:]), mailboxes: Mailboxes(), stallLimit: .seconds(30), clock: clock)
        try await Self.serving(metrics: BotMetrics(), status: status, store: try SQLiteStore()) { base in
            #expect(try await Self.get(base, "healthz") == (200, "ok\n"), "alive while it starts")
            #expect(try await Self.get(base, "readyz") == (503, "telegram: no answer to a poll lately\n"))
            status.turned()
            status.polled()
            #expect(try await Self.get(base, "readyz") == (200, "ready\n"))
            try await clock.sleep(for: .seconds(31))
            #expect(try await Self.get(base, "healthz") == (503, "the polling loop has stalled\n"))
            #expect(try await Self.get(base, "readyz").status == 503)
            status.turned()
            #expect(try await Self.get(base, "healthz") == (200, "ok\n"))
            #expect(try await Self.get(base, "nothing-here").status == 404)
        }
    }

    /// The numbers come from what the bot did: two answers, a model failure, a 429 from Telegram.
    @Test func metricsCountRepliesModelCallsTokensTelegramCallsAndErrors() async throws {
        let metrics = BotMetrics()
        var configured = try BotHarness()
        configured.telegramObserver = metrics.telegramCall
        let harness = configured
        let capture = harness.log.logger.handler
        let logger = Logger(label: "test") { _ in MultiplexLogHandler([capture, MetricsLogHandler(metrics: metrics)]) }
        harness.llm.enqueue(.answer("first answer"), .answer("second answer"), .quotaExceeded)
        harness.telegram.failNext("sendMessage", status: 429, description: "Too Many Requests: retry after 1")
        let bot = try await harness.connect(logger: logger)
        let running = Task { try await bot.serviceGroup(logger: logger).run() }
        defer { running.cancel() }
        for chat in [701, 702, 703] as [Int64] { harness.telegram.deliverText("question", chatID: chat) }
        try await harness.eventually("every reply") { harness.replyRecords.count == 3 }
        try await Self.serving(metrics: metrics, status: bot.status, store: harness.store) { base in
            let (code, text) = try await Self.get(base, "metrics")
            #expect(code == 200)
            let lines = Set(text.split(separator: "\n").map(String.init))
            #expect(lines.contains(#"telegram_assistant_replies_total{outcome="ok"} 2"#), "\(text)")
            #expect(lines.contains(#"telegram_assistant_replies_total{outcome="quota_exceeded"} 1"#))
            #expect(lines.contains(#"telegram_assistant_model_calls_total{model="test-model",outcome="ok"} 2"#))
            #expect(lines.contains(#"telegram_assistant_errors_total{event="model_call",error_type="quota_exceeded"} 1"#))
            #expect(lines.contains(#"telegram_assistant_telegram_429_total{method="sendMessage"} 1"#))
            #expect(lines.contains { $0.hasPrefix(#"telegram_assistant_telegram_calls_total{method="sendMessage",outcome="ok"} "#) })
            #expect(lines.contains { $0.hasPrefix(#"telegram_assistant_prompt_tokens_total{model="test-model"} "#) })
            #expect(lines.contains(#"telegram_assistant_reply_seconds_count 3"#))
            #expect(lines.contains(#"telegram_assistant_time_to_first_token_seconds_count{model="test-model"} 2"#))
            #expect(lines.contains("telegram_assistant_active_replies 0.0") && lines.contains("telegram_assistant_queue_depth 0.0"))
            #expect(!text.contains(harness.telegram.token), "no secret in the metrics")

            // A slow answer with a second message waiting behind it in the same chat.
            harness.llm.enqueue(.paced(String(repeating: "slow ", count: 40), charactersPerEvent: 5, every: .milliseconds(50)), .answer("next"))
            harness.telegram.deliverText("one", chatID: 704)
            harness.telegram.deliverText("two", chatID: 704)
            try await harness.eventually("the gauges") {
                let lines = Set(((try? await Self.get(base, "metrics"))?.text ?? "").split(separator: "\n").map(String.init))
                return lines.contains("telegram_assistant_active_replies 1.0") && lines.contains("telegram_assistant_queue_depth 1.0")
            }
        }
    }
}
#endif
