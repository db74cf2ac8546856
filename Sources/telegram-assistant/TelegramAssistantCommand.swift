import ArgumentParser
import TelegramAssistant

/// The process: every command runs on the library's event thread (`AssistantApp.onEventThread`).
@main
enum Main {
    /// On the main actor: a nonisolated `main` would take its first step in Swift's global pool.
    @MainActor static func main() async {
        await AssistantApp.onEventThread { await TelegramAssistantCommand.main() }
    }
}

/// `telegram-assistant`: parses the command line and hands over to the library.
struct TelegramAssistantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "telegram-assistant",
        abstract: "An AI assistant for Telegram and the terminal, for any OpenAI-compatible endpoint.",
        version: "0.1.0",
        subcommands: [RunCommand.self, ChatCommand.self, CheckCommand.self],
        defaultSubcommand: RunCommand.self)
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("env-file"), help: "Read configuration from this file instead of ./.env.")
    var envFile: String?

    /// The validated configuration, or exit 78 (EX_CONFIG) after printing every problem.
    func config(requireTelegram: Bool) async throws -> AssistantConfig {
        guard let config = await AssistantApp.loadConfig(envFile: envFile, requireTelegram: requireTelegram) else {
            throw ExitCode(AssistantApp.configurationStatus)
        }
        return config
    }
}

/// Exits with `status` unless it is 0.
func finish(_ status: Int32) throws {
    if status != 0 { throw ExitCode(status) }
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the Telegram bot (long polling). The default command.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        try finish(await AssistantApp.runBot(try await common.config(requireTelegram: true)))
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
        try finish(await AssistantApp.chat(try await common.config(requireTelegram: false), fresh: new, logFile: logFile))
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the configuration, the Telegram token, the model provider and the database; exit 0 only if all pass.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        try finish(await AssistantApp.check(try await common.config(requireTelegram: true)))
    }
}
