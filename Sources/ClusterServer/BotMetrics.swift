#if Cluster
import Logging
import Metrics
import Prometheus
import TelegramBotAPI

/// The bot's metrics, in Prometheus' text format, through swift-metrics on a registry of its own.
///
/// Nothing in the engine or the front end counts anything: the structured log records already say
/// what happened (one `model_call` per model call, one `reply` per answered message, an
/// `error_type` on every failure), and `MetricsLogHandler` turns them into these numbers. Telegram's
/// calls come from `BotAPIClient`'s observer; the gauges are read when scraped.
public final class BotMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Replies take seconds; a model's first token, tenths of a second to seconds.
        factory.defaultDurationHistogramBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120].map { Duration.milliseconds(Int64($0 * 1000)) }
        factory.defaultValueHistogramBuckets = [64, 256, 1024, 4096, 16_384, 65_536, 262_144]
        self.factory = factory
    }

    // MARK: Inputs

    /// One structured log record.
    func observe(_ event: String, level: Logger.Level, metadata: Logger.Metadata) {
        let errorType = metadata["error_type"].map { "\($0)" }
        if let errorType {
            Counter(label: "telegram_assistant_errors_total", dimensions: [("event", event), ("error_type", errorType)], factory: factory).increment()
        }
        switch event {
        case "model_call":
            let model = metadata["model"].map { "\($0)" } ?? "unknown"
            Counter(label: "telegram_assistant_model_calls_total", dimensions: [("model", model), ("outcome", errorType ?? "ok")], factory: factory)
                .increment()
            if let latency = Self.number(metadata["latency_ms"]) { timer("telegram_assistant_model_call_seconds", model).recordMilliseconds(latency) }
            if let ttft = Self.number(metadata["ttft_ms"]) { timer("telegram_assistant_time_to_first_token_seconds", model).recordMilliseconds(ttft) }
            if let prompt = Self.number(metadata["prompt_tokens"]) {
                Counter(label: "telegram_assistant_prompt_tokens_total", dimensions: [("model", model)], factory: factory).increment(by: prompt)
            }
            if let completion = Self.number(metadata["completion_tokens"]) {
                Counter(label: "telegram_assistant_completion_tokens_total", dimensions: [("model", model)], factory: factory).increment(by: completion)
            }
        case "reply":
            Counter(label: "telegram_assistant_replies_total", dimensions: [("outcome", errorType ?? "ok")], factory: factory).increment()
            if let latency = Self.number(metadata["latency_ms"]) {
                Timer(label: "telegram_assistant_reply_seconds", dimensions: [], factory: factory).recordMilliseconds(latency)
            }
            if let visible = Self.number(metadata["first_visible_ms"]) {
                Timer(label: "telegram_assistant_first_visible_seconds", dimensions: [], factory: factory).recordMilliseconds(visible)
            }
        default:
            break
        }
    }

    /// One Bot API call; a 429 is counted by method too.
    public func telegramCall(_ method: String, _ failure: TelegramError?) {
        Counter(label: "telegram_assistant_telegram_calls_total", dimensions: [("method", method), ("outcome", failure?.errorType ?? "ok")], factory: factory)
            .increment()
        if case .rateLimited = failure {
            Counter(label: "telegram_assistant_telegram_429_total", dimensions: [("method", method)], factory: factory).increment()
        }
    }

    // MARK: Output

    /// What is true right now, read at each scrape.
    public struct Gauges: Sendable {
        /// Chats with a reply in progress, and messages waiting behind them.
        public var replying: Int
        public var waiting: Int
        /// This process polls Telegram (one replica at a time does; 0 in webhook mode).
        public var polling: Bool
        /// Replicas on PostgreSQL: the chats this one holds, and the replicas alive.
        public var leases: (chats: Int, replicas: Int)?

        public init(replying: Int, waiting: Int, polling: Bool, leases: (chats: Int, replicas: Int)? = nil) {
            self.replying = replying
            self.waiting = waiting
            self.polling = polling
            self.leases = leases
        }
    }

    /// The text format, with `gauges` as they are now.
    func render(_ gauges: Gauges) -> String {
        Gauge(label: "telegram_assistant_active_replies", dimensions: [], factory: factory).record(gauges.replying)
        Gauge(label: "telegram_assistant_queue_depth", dimensions: [], factory: factory).record(gauges.waiting)
        Gauge(label: "telegram_assistant_leader", dimensions: [], factory: factory).record(gauges.polling ? 1 : 0)
        if let leases = gauges.leases {
            Gauge(label: "telegram_assistant_chat_leases", dimensions: [], factory: factory).record(leases.chats)
            Gauge(label: "telegram_assistant_replicas_alive", dimensions: [], factory: factory).record(leases.replicas)
        }
        return registry.emitToString()
    }

    private func timer(_ label: String, _ model: String) -> Timer {
        Timer(label: label, dimensions: [("model", model)], factory: factory)
    }

    /// A number that a log record carries as text.
    private static func number(_ value: Logger.MetadataValue?) -> Int? {
        value.flatMap { Int("\($0)") }
    }
}

/// Feeds every log record at `info` or above to `BotMetrics`; prints nothing.
public struct MetricsLogHandler: LogHandler {
    let metrics: BotMetrics
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info

    public init(metrics: BotMetrics) {
        self.metrics = metrics
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let metadata = self.metadata.merging(event.metadata ?? [:]) { $1 }
        metrics.observe("\(event.message)", level: event.level, metadata: metadata)
    }
}
#endif
