import Foundation

/// The terminal front end: reads lines, answers commands itself, streams the model's answers.
///
/// Input and output are injected (an async sequence of lines and a write function), so the whole
/// conversation loop runs in tests exactly as in a terminal.
public struct TerminalChat: Sendable {
    public static let conversationKind = "terminal"

    let engine: ConversationEngine
    let conversationID: Int64
    let write: @Sendable (String) -> Void

    public init(engine: ConversationEngine, conversationID: Int64, write: @escaping @Sendable (String) -> Void) {
        self.engine = engine
        self.conversationID = conversationID
        self.write = write
    }

    /// Opens the last terminal conversation, or a new one when there is none or `fresh` is set.
    public static func openConversation(in store: Store, fresh: Bool) throws -> ConversationRecord {
        if !fresh, let latest = try store.latestConversation(kind: conversationKind) { return latest }
        return try store.createConversation(kind: conversationKind)
    }

    static let help = """
        Type a message and press Enter. Commands:
          /help          this help
          /clear         forget this conversation's history
          /stats         messages, requests, tokens, cost, latency
          /model         show the model; /model NAME switches this conversation to NAME
          /exit          leave (Ctrl-D and Ctrl-C work too)
        """

    /// Runs until `/exit` or the end of input. Cancelling the task stops the answer in progress
    /// (it is saved as partial) and ends the loop.
    public func run<Lines: AsyncSequence>(lines: Lines) async where Lines.Element == String {
        let model = (try? engine.model(for: conversationID)) ?? engine.settings.model
        let remembered = (try? engine.stats(conversationID: conversationID).messages) ?? 0
        write("telegram-assistant chat · model \(model)" + (remembered > 0 ? " · resumed with \(remembered) messages in memory" : "") + "\n")
        write("Type /help for commands, /exit or Ctrl-D to leave.\n")
        prompt()
        do {
            for try await line in lines {
                let text = line.trimmingCharacters(in: .whitespacesAndNewlines)
                if text.isEmpty {
                    prompt()
                    continue
                }
                if let command = Command(text) {
                    if command.name == "exit" || command.name == "quit" { break }
                    write(handle(command) + "\n")
                } else {
                    await answer(text)
                }
                if Task.isCancelled { break }
                prompt()
            }
        } catch {
            // The input closed with an error; leave as on Ctrl-D.
        }
        write("\nBye.\n")
    }

    private func prompt() {
        write("\n> ")
    }

    private func answer(_ text: String) async {
        let write = self.write
        let outcome = await engine.reply(to: text, conversationID: conversationID) { piece in write(piece) }
        switch outcome {
        case .answered(let completion):
            write(completion.text.hasSuffix("\n") ? "" : "\n")
            if let notice = outcome.notice { write(notice + "\n") }
        case .interrupted(let partial, _, _):
            let separator = partial.isEmpty || partial.last?.isWhitespace == true ? "" : " "
            write(separator + (outcome.notice ?? ReplyOutcome.interruptedMarker) + "\n")
        case .failed, .messageTooLong, .storageFailed:
            write((outcome.notice ?? "") + "\n")
        }
    }

    private func handle(_ command: Command) -> String {
        do {
            switch command.name {
            case "help", "start":
                return Self.help
            case "clear":
                try engine.clear(conversationID: conversationID)
                return "History cleared."
            case "stats":
                return try engine.stats(conversationID: conversationID).text
            case "model":
                if command.argument.isEmpty {
                    return "Model: \(try engine.model(for: conversationID))"
                }
                try engine.setModel(command.argument, conversationID: conversationID)
                return "Model switched to \(command.argument) for this conversation."
            default:
                return "Unknown command /\(command.name). Type /help for the list."
            }
        } catch {
            return "Could not do that: \(error)"
        }
    }
}
