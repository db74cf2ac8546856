import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TelegramAssistant

/// `telegram-assistant`: parses the command line and hands over to the library.
@main
struct TelegramAssistantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "telegram-assistant",
        abstract: "An AI assistant for Telegram and the terminal, for any OpenAI-compatible endpoint.",
        version: TelegramAssistantCommand.version,
        subcommands: [RunCommand.self, ChatCommand.self, CheckCommand.self],
        defaultSubcommand: RunCommand.self)
}

extension TelegramAssistantCommand {
    static let version = "0.1.0"
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the configuration, the Telegram token, the model provider and the database; exit 0 only if all pass.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let config = try await common.loadConfig(requireTelegram: true)
        let results = await Checkup(config: config).run()
        FileHandle.standardOutput.write(Data((Checkup.report(results, config: config) + "\n").utf8))
        if !results.allSatisfy(\.passed) { throw ExitCode(1) }
    }
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("env-file"), help: "Read configuration from this file instead of ./.env.")
    var envFile: String?

    /// Loads and validates the configuration, or exits 78 (EX_CONFIG) listing every problem.
    func loadConfig(requireTelegram: Bool = false) async throws -> AssistantConfig {
        do {
            return try await AssistantConfig.load(
                environment: ProcessInfo.processInfo.environment, envFile: envFile, requireTelegram: requireTelegram)
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(78)
        }
    }
}

/// Prints `error: …` to standard error and exits with `status` (78: configuration, not restarted).
func fail(_ message: String, status: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return ExitCode(status)
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the Telegram bot (long polling). The default command.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let config = try await common.loadConfig(requireTelegram: true)
        do {
            let sink = try config.logFile.map { try LogSink(appendingTo: $0, creatingDirectory: true) } ?? .standardError
            let logger = Assistant.makeLogger(label: "telegram-assistant", level: config.logLevel, sink: sink)
            let assistant = try Assistant(config: config, logger: logger)  // creates the database's directory
            let instance = try InstanceLock(databasePath: config.databasePath)
            let bot: TelegramBot
            do {
                bot = try await TelegramBot.connect(
                    config: config, engine: assistant.engine, store: assistant.store, logger: logger, http: assistant.http,
                    notifier: SystemdNotifier(environment: ProcessInfo.processInfo.environment))
            } catch let error as BotStartError {
                logger.critical("start_failed", metadata: ["error": "\(error.description)"])
                throw fail(error.description, status: error.isConfiguration ? 78 : 1)
            }
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: bot)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            let impatience = SecondSignalExit()
            try await group.run()
            withExtendedLifetime((impatience, instance)) {}
        } catch let error as StoreError {
            throw fail(error.description)
        } catch let error as LogFileError {
            throw fail(error.description)
        }
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
        sources = [SIGTERM, SIGINT].map { signal in
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
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

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Chat with the model in the terminal; the conversation is remembered.")

    @OptionGroup var common: CommonOptions

    @Flag(help: "Start a new conversation instead of resuming the last one.")
    var new = false

    @Option(
        name: .customLong("log-file"),
        help: "Where JSON logs go (default: LOG_FILE, else chat.log beside the database; '-' for stderr).")
    var logFile: String?

    func run() async throws {
        let config = try await common.loadConfig()
        let logPath = logFile ?? config.logFile ?? URL(fileURLWithPath: config.databasePath).deletingLastPathComponent().appendingPathComponent("chat.log").path
        do {
            let sink = logPath == "-" ? LogSink.standardError : try LogSink(appendingTo: logPath, creatingDirectory: true)
            let logger = Assistant.makeLogger(label: "telegram-assistant", level: config.logLevel, sink: sink)
            let assistant = try Assistant(config: config, logger: logger)
            let conversation = try TerminalChat.openConversation(in: assistant.store, fresh: new)
            let chat = TerminalChat(engine: assistant.engine, conversationID: conversation.id) { text in
                FileHandle.standardOutput.write(Data(text.utf8))
            }
            let service = TerminalChatService(chat: chat, lines: StandardInput.lines())
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch let error as StoreError {
            throw fail(error.description)
        } catch let error as LogFileError {
            throw fail(error.description)
        }
    }
}
