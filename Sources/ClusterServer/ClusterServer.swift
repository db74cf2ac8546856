// ClusterServer: the Cluster build's HTTP listener, on Hummingbird: the webhook Telegram posts
// to, and /metrics, /healthz, /readyz.
//
// Owns: the routes and what each answers. Reads the bot's state through `StatusReporter` and the
// store; changes nothing.
// Imports: TelegramFrontEnd, TelegramBotAPI, AssistantStore, Hummingbird, Metrics, Prometheus.
#if Cluster
import AssistantStore
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import Support
import TelegramFrontEnd

/// Serves, on `WEBHOOK_LISTEN`, the webhook (`POST` to the path of `TELEGRAM_WEBHOOK_URL`): a
/// request without the secret header is refused 401 and nothing is stored; an update is answered
/// 200 only once the ledger holds it (500 when the database failed, 503 while the bot starts, and
/// Telegram sends it again).
///
/// And, on `METRICS_LISTEN` (or on the webhook listener when that is unset or the same):
/// - `GET /metrics`: Prometheus' text format (`BotMetrics`);
/// - `GET /healthz`: 200 while the process serves and its polling loop turns (what systemd's
///   watchdog checks too); 503 when the loop has stalled;
/// - `GET /readyz`: 200 when the database answers and Telegram answered lately; 503 naming which
///   does not.
public struct ClusterServer: Service, CustomStringConvertible {
    private let application: Application<RouterResponder<BasicRequestContext>>

    /// The webhook's route: its path, the secret Telegram sends, and where updates go.
    public struct Webhook: Sendable {
        public var path: String
        public var secret: Secret
        public var intake: UpdateIntake

        public init(path: String, secret: Secret, intake: UpdateIntake) {
            self.path = path
            self.secret = secret
            self.intake = intake
        }
    }

    /// The largest update body taken (Telegram's are a few kilobytes).
    static let maxBody = 1 << 20

    /// Serves the webhook when `webhook` is set, and /metrics and the health routes when `metrics`
    /// is. `onListening` gets the port, for a listener on port 0 (tests).
    public init(
        host: String, port: Int, metrics: BotMetrics?, webhook: Webhook? = nil, status: StatusReporter, leases: ChatLeases? = nil,
        store: any Store, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        let router = Router()
        if let webhook { Self.route(webhook, on: router) }
        if let metrics { Self.routeMetrics(metrics, status: status, leases: leases, store: store, on: router) }
        var quiet = logger
        quiet.logLevel = .warning
        application = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                webhook?.intake.listenerIsUp()
                await onListening(channel.localAddress?.port ?? port)
            }, logger: quiet)
    }

    private static func route(_ webhook: Webhook, on router: Router<BasicRequestContext>) {
        let header = HTTPField.Name("X-Telegram-Bot-Api-Secret-Token")!
        router.post(RouterPath(webhook.path)) { request, _ -> Response in
            guard let given = request.headers[header], webhook.secret.matches(Array(given.utf8)) else {
                return Self.text(.unauthorized, "unauthorized\n")
            }
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBody)
            } catch {
                return Self.text(.contentTooLarge, "too large\n")
            }
            switch await webhook.intake.receivePushed(Array(buffer: body)) {
            case .stored, .undecodable: return Self.text(.ok, "ok\n")
            case .notStored("starting"): return Self.text(.serviceUnavailable, "starting\n")
            case .notStored: return Self.text(.internalServerError, "not stored\n")
            }
        }
    }

    private static func routeMetrics(
        _ metrics: BotMetrics, status: StatusReporter, leases: ChatLeases?, store: any Store, on router: Router<BasicRequestContext>
    ) {
        router.get("metrics") { _, _ -> Response in
            let load = status.load
            let text = metrics.render(
                BotMetrics.Gauges(replying: load.chats, waiting: load.waiting, polling: status.isPolling, leases: leases?.counts))
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
