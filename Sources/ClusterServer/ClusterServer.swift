// ClusterServer: the Cluster build's HTTP listener, on Hummingbird: /metrics, /healthz, /readyz.
//
// Owns: the routes and what each answers. Reads the bot's state through `StatusReporter` and the
// store; changes nothing.
// Imports: TelegramFrontEnd, TelegramBotAPI, AssistantStore, Hummingbird, Metrics, Prometheus.
#if Cluster
import AssistantStore
import Hummingbird
import Logging
import ServiceLifecycle
import TelegramFrontEnd

/// Serves, on `METRICS_LISTEN`:
/// - `GET /metrics`: Prometheus' text format (`BotMetrics`);
/// - `GET /healthz`: 200 while the process serves and its polling loop turns (what systemd's
///   watchdog checks too); 503 when the loop has stalled;
/// - `GET /readyz`: 200 when the database answers and Telegram answered lately; 503 naming which
///   does not.
public struct ClusterServer: Service, CustomStringConvertible {
    private let application: Application<RouterResponder<BasicRequestContext>>

    /// `onListening` gets the port, for a listener on port 0 (tests).
    public init(
        host: String, port: Int, metrics: BotMetrics, status: StatusReporter, store: any Store, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        let router = Router()
        router.get("metrics") { _, _ -> Response in
            let load = status.load
            let text = metrics.render(BotMetrics.Gauges(replying: load.chats, waiting: load.waiting))
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("healthz") { _, _ -> Response in
            status.isStalled ? Self.text(.serviceUnavailable, "the polling loop has stalled\n") : Self.text(.ok, "ok\n")
        }
        router.get("readyz") { _, _ -> Response in
            var problems: [String] = []
            do {
                _ = try await store.updateOffset()
            } catch {
                problems.append("database: \(error)")
            }
            if !status.telegramAnswers { problems.append("telegram: no answer to a poll lately") }
            return problems.isEmpty ? Self.text(.ok, "ready\n") : Self.text(.serviceUnavailable, problems.joined(separator: "\n") + "\n")
        }
        var quiet = logger
        quiet.logLevel = .warning
        application = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) }, logger: quiet)
    }

    public var description: String { "ClusterServer" }

    public func run() async throws {
        try await application.run()
    }

    private static func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
#endif
