import Conversation
import Foundation
import Logging

/// The terminal front end: reads lines, answers commands itself, streams the model's answers.
///
/// Input and output are injected (an async sequence of lines and a write function), so the whole
/// conversation loop runs in tests exactly as in a terminal.
public struct TerminalChat: Sendable {
    public static let conversationKind = "terminal"

    let engine: ConversationEngine
    let conversationID: Int64
    let commands: CommandHandler
    let write: @Sendable (String) -> Void

    /// Resumes the last terminal conversation, or starts a new one when there is none or `fresh`
    /// is set. Throws a `StoreError` when the database fails.
    public init(engine: ConversationEngine, fresh: Bool, logger: Logger, write: @escaping @Sendable (String) -> Void) async throws {
        self.engine = engine
        conversationID = try await engine.openConversation(kind: Self.conversationKind, fresh: fresh).id
        commands = CommandHandler(
            engine: engine, wording: .init(help: Self.help, noun: "conversation", cleared: "History cleared."), logger: logger)
        self.write = write
    }

    static let help = "Type a message and press Enter. Commands:\n"
        + CommandHandler.helpLines(noun: "conversation", extra: [("exit", "leave (Ctrl-D and Ctrl-C work too)")])

    /// Runs until `/exit` or the end of input. Cancelling the task stops the answer in progress
    /// (it is saved as partial) and ends the loop.
    public func run<Lines: AsyncSequence>(lines: Lines) async where Lines.Element == String {
        let model = (try? await engine.model(for: conversationID)) ?? engine.settings.model
        let remembered = (try? await engine.stats(conversationID: conversationID).messages) ?? 0
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
                    write(await commands.handle(command, conversationID: conversationID, permissions: .init(allowedModels: nil)) + "\n")
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

    /// Streams the answer as it comes, then the outcome's notice on a line of its own (after a
    /// partial answer, on the same line).
    private func answer(_ text: String) async {
        let write = self.write
        let outcome = await engine.reply(to: UserTurn(text), conversationID: conversationID) { piece in write(piece) }
        guard let answer = outcome.answer else {
            write((outcome.notice ?? "") + "\n")
            return
        }
        if case .interrupted = outcome {
            let separator = answer.isEmpty || answer.last?.isWhitespace == true ? "" : " "
            write(separator + (outcome.notice ?? ReplyOutcome.interruptedMarker) + "\n")
            return
        }
        write(answer.hasSuffix("\n") ? "" : "\n")
        if let notice = outcome.notice { write(notice + "\n") }
    }
}
