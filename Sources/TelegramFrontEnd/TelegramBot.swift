import Logging
import ServiceLifecycle
import Support
import UnixSignals

/// Why the bot could not start; the message is for the operator.
public struct BotStartError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// True when retrying cannot help until the configuration changes (a rejected token): the
    /// process then exits 78, which the unit does not restart.
    public var isConfiguration = false

    public init(description: String, isConfiguration: Bool = false) {
        self.description = description
        self.isConfiguration = isConfiguration
    }
}

/// The Telegram bot as the services that run it, in start order: maintenance, the status and
/// watchdog, the chat leases (replicas on PostgreSQL), the dispatcher, the intake. A graceful shutdown stops them in reverse: polling stops at
/// once, replies in flight get the grace period, then the rest.
public struct TelegramBot: Sendable, CustomStringConvertible {
    public let username: String
    public let intake: UpdateIntake
    public let dispatcher: ChatDispatcher
    public let status: StatusReporter
    public let maintenance: Maintenance
    /// Replicas on one database: this one's heartbeat and chats.
    public let leases: ChatLeases?
    /// How long replies in flight may finish after a shutdown begins before they are cut off.
    public let grace: Duration
    /// Where the bot's services run their tasks (`HTTPClient.executor`: the HTTP event thread);
    /// nil: Swift's global pool.
    public let executor: (any TaskExecutor)?
    /// Maintenance's own thread, with `executor`: its long statements (a purge, a vacuum) stay off
    /// the event thread, and off Swift's global pool, whose first use would start libdispatch's
    /// once-a-second pool monitor for the rest of the process's life.
    let maintenanceThread: WorkerThread?

    public init(
        username: String, intake: UpdateIntake, dispatcher: ChatDispatcher, status: StatusReporter, maintenance: Maintenance,
        leases: ChatLeases? = nil, grace: Duration, executor: (any TaskExecutor)? = nil
    ) {
        self.executor = executor
        maintenanceThread = executor == nil ? nil : WorkerThread(name: "db-maintenance")
        self.leases = leases
        self.username = username
        self.intake = intake
        self.dispatcher = dispatcher
        self.status = status
        self.maintenance = maintenance
        self.grace = grace
    }

    /// What a log shows for the bot: its name, nothing it holds.
    public var description: String { "TelegramBot(@\(username))" }

    /// The leases stop after the dispatcher: the heartbeat goes on while replies in flight finish.
    /// All but maintenance run on `executor` when there is one, maintenance then on a thread of its own.
    public var services: [any Service] {
        let services: [any Service] = [status] + (leases.map { [$0] } ?? []) + [dispatcher, intake]
        let maintenance: any Service = maintenanceThread.map { PreferringExecutor(service: self.maintenance, executor: $0) } ?? self.maintenance
        return [maintenance] + services.map { service in executor.map { PreferringExecutor(service: service, executor: $0) } ?? service }
    }

    /// The service group that runs the bot, shutting down gracefully on `signals`. `alongWith` start
    /// first and stop last (the HTTP listener: /healthz answers until the end).
    public func serviceGroup(signals: [UnixSignal] = [], logger: Logger, alongWith extra: [any Service] = []) -> ServiceGroup {
        var configuration = ServiceGroupConfiguration(
            services: (extra + services).map { .init(service: $0) }, gracefulShutdownSignals: signals, logger: logger)
        configuration.maximumGracefulShutdownDuration = grace
        return ServiceGroup(configuration: configuration)
    }
}

/// Runs a service with a task executor preference, so that its tasks run there.
struct PreferringExecutor: Service, CustomStringConvertible {
    let service: any Service
    let executor: any TaskExecutor

    func run() async throws {
        try await TaskExecutors.prefer(executor) { try await service.run() }
    }

    /// The service's own name in the service group's logs.
    var description: String { String(describing: service) }
}
