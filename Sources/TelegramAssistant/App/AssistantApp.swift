import AssistantStore
import ClusterServer
import CurlHTTP
import Foundation
import Logging
import ServiceLifecycle
import Support
import Synchronization
import TelegramFrontEnd
import TerminalFrontEnd

/// The subcommands end to end: configuration, logging, the composition root, the service group,
/// and the exit status. The executable only parses arguments and calls these.
public enum AssistantApp {
    /// Exit statuses: 78 (EX_CONFIG) means "fix the configuration", which the unit does not restart.
    public static let configurationStatus: Int32 = 78

    /// The process's one event thread: every HTTP transfer, and every task that `onEventThread`
    /// starts (all but the database's maintenance, which has a thread of its own).
    public static let eventThread = EventThread()

    /// Runs `body` (a whole command, from `main`) with its tasks, and the tasks they start, on
    /// `eventThread`. Nothing then starts libdispatch's worker pool, whose monitor would wake the
    /// process once a second for as long as it lives: an idle bot sleeps until Telegram answers its
    /// long poll. Call it from an isolated `main` (the main actor), so that not even its first step
    /// runs in Swift's global pool.
    public static func onEventThread<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async rethrows -> T {
        try await TaskExecutors.prefer(eventThread.executor, isolation: isolation, body)
    }

    /// Loads and validates the configuration, or prints every problem and returns nil.
    public static func loadConfig(envFile: String?, requireTelegram: Bool) async -> AssistantConfig? {
        do {
            return try await AssistantConfig.load(
                environment: ProcessInfo.processInfo.environment, envFile: envFile, requireTelegram: requireTelegram)
        } catch {
            printError("\(error)", prefix: "")
            return nil
        }
    }

    /// `run`: the Telegram bot until SIGTERM or SIGINT (a second signal exits at once).
    public static func runBot(_ config: AssistantConfig) async -> Int32 {
        await reportingFailures {
            let sink = try config.logFile.map { try LogSink(appendingTo: $0, creatingDirectory: true) } ?? .standardError
            var logger = Assistant.makeLogger(label: "telegram-assistant", level: config.logLevel, sink: sink)
            var overrides = Assistant.Overrides()
            overrides.http = config.makeHTTPClient(on: eventThread)
            overrides.notifier = SystemdNotifier(environment: ProcessInfo.processInfo.environment)
            #if Cluster
                // The webhook's listener serves the metrics too unless METRICS_LISTEN is elsewhere.
                let webhookListen = config.telegram?.webhook == nil ? nil : config.webhookListen
                let metrics = config.metricsListen != nil || webhookListen != nil ? BotMetrics() : nil
                if let metrics {
                    logger = Assistant.makeLogger(label: "telegram-assistant", level: config.logLevel, sink: sink, metrics: metrics)
                    overrides.telegramObserver = metrics.telegramCall
                }
            #endif
            let assistant = try await Assistant.open(config: config, logger: logger, overrides: overrides)  // creates the database's directory
            // One bot per SQLite file; replicas on one PostgreSQL share it.
            let instance = config.postgres == nil ? try InstanceLock(databasePath: config.databasePath) : nil
            let bot: TelegramBot
            do {
                bot = try await assistant.connectBot()
            } catch let error as BotStartError {
                logger.critical("start_failed", metadata: ["error": "\(error.description)"])
                printError(error.description)
                return error.isConfiguration ? configurationStatus : 1
            }
            let impatience = SecondSignalExit()
            var listeners: [any Service] = []
            #if Cluster
                if let listen = webhookListen, let webhook = config.telegram?.webhook {
                    let route = ClusterServer.Webhook(path: webhook.url.path.isEmpty ? "/" : webhook.url.path, secret: webhook.secret, intake: bot.intake)
                    let withMetrics = config.metricsListen == nil || config.metricsListen == listen
                    listeners.append(
                        ClusterServer(
                            host: listen.host, port: listen.port, metrics: withMetrics ? metrics : nil, webhook: route, status: bot.status,
                            leases: bot.leases, store: assistant.store, logger: logger))
                }
                if let listen = config.metricsListen, listen != webhookListen {
                    listeners.append(
                        ClusterServer(
                            host: listen.host, port: listen.port, metrics: metrics, status: bot.status, leases: bot.leases, store: assistant.store,
                            logger: logger))
                }
            #endif
            try await bot.serviceGroup(signals: [.sigterm, .sigint], logger: logger, alongWith: listeners).run()
            withExtendedLifetime((impatience, instance)) {}
            return 0
        }
    }

    /// `chat`: the terminal chat; logs go to `logFile` ("-": standard error), else `LOG_FILE`, else
    /// chat.log beside the database.
    public static func chat(_ config: AssistantConfig, fresh: Bool, logFile: String?) async -> Int32 {
        await reportingFailures {
            let logPath = logFile ?? config.logFile ?? URL(fileURLWithPath: config.databasePath).deletingLastPathComponent()
                .appendingPathComponent("chat.log").path
            let sink = logPath == "-" ? LogSink.standardError : try LogSink(appendingTo: logPath, creatingDirectory: true)
            let logger = Assistant.makeLogger(label: "telegram-assistant", level: config.logLevel, sink: sink)
            var overrides = Assistant.Overrides()
            overrides.http = config.makeHTTPClient(on: eventThread)
            let chat = try await Assistant.open(config: config, logger: logger, overrides: overrides).terminalChat(fresh: fresh) { text in
                FileHandle.standardOutput.write(Data(text.utf8))
            }
            let service = TerminalChatService(chat: chat, lines: StandardInput.lines())
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            return 0
        }
    }

    /// `check`: prints the report; 0 only when every check passed.
    public static func check(_ config: AssistantConfig) async -> Int32 {
        let results = await Checkup(config: config, http: config.makeHTTPClient(on: eventThread), clock: ContinuousClock()).run()
        FileHandle.standardOutput.write(Data((Checkup.report(results, config: config) + "\n").utf8))
        return results.allSatisfy(\.passed) ? 0 : 1
    }

    /// Runs `body`; a failure is printed as `error: …` (the store's and the log file's explain
    /// themselves) and exits 1.
    private static func reportingFailures(_ body: () async throws -> Int32) async -> Int32 {
        do {
            return try await body()
        } catch {
            printError("\(error)")
            return 1
        }
    }

    private static func printError(_ message: String, prefix: String = "error: ") {
        FileHandle.standardError.write(Data("\(prefix)\(message)\n".utf8))
    }
}

/// The first SIGTERM/SIGINT starts a graceful shutdown (the service group handles it); a second one
/// means the operator will not wait: exit at once. Nothing is lost: every saved turn is already in
/// SQLite (WAL), and a reply cut off this way is marked for the user at the next start.
final class SecondSignalExit {
    /// How many shutdown signals arrived; shared with the signal handlers.
    private final class Count: Sendable {
        let value = Mutex(0)
        func increment() -> Int { value.withLock { $0 += 1; return $0 } }
    }
    private let sources: [any DispatchSourceSignal]

    init() {
        let count = Count()
        // A serial queue, not a global one: that would start libdispatch's monitored worker pool.
        let queue = DispatchQueue(label: "second-signal")
        sources = [SIGTERM, SIGINT].map { signal in
            let source = DispatchSource.makeSignalSource(signal: signal, queue: queue)
            source.setEventHandler {
                if count.increment() >= 2 {
                    FileHandle.standardError.write(Data("second signal: exiting now\n".utf8))
                    _exit(1)
                }
            }
            source.resume()
            return source
        }
    }
}
