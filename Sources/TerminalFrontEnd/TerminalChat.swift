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
    let logger: Logger
    let write: @Sendable (String) -> Void

    /// Resumes the last terminal conversation, or starts a new one when there is none or `fresh`
    /// is set. Throws a `StoreError` when the database fails.
    public init(engine: ConversationEngine, fresh: Bool, logger: Logger, write: @escaping @Sendable (String) -> Void) async throws {
        self.engine = engine
        conversationID = try await engine.openConversation(kind: Self.conversationKind, fresh: fresh).id
        commands = CommandHandler(
            engine: engine, wording: .init(help: Self.help, noun: "conversation", cleared: "History cleared."), logger: logger)
        self.logger = logger
        self.write = write
    }

    static let help = "Type a message and press Enter. Commands:\n"
        + CommandHandler.helpLines(
            noun: "conversation",
            extra: [
                ("image PATH [question]", "ask about an image file (JPEG, PNG, GIF, WebP)"),
                ("voice PATH", "transcribe a recording (OGG, MP3, M4A, WAV, …) and answer it"),
                ("exit", "leave (Ctrl-D and Ctrl-C work too)"),
            ])

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
                    if command.name == "image" || command.name == "voice" {
                        await attach(command)
                    } else {
                        write(await commands.handle(command, conversationID: conversationID, permissions: .init(allowedModels: nil)) + "\n")
                    }
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

    /// `/image PATH [question]` and `/voice PATH`: the same turns a Telegram photo or voice note
    /// makes, from a file.
    private func attach(_ command: Command) async {
        guard let file = MediaFile(command.argument) else {
            write("Usage: /\(command.name) PATH\(command.name == "image" ? " [question]" : "") (quote a path with spaces)\n")
            return
        }
        guard let bytes = FileManager.default.contents(atPath: file.path).map(Array.init) else {
            write("Cannot read \(file.path).\n")
            return
        }
        if command.name == "image" {
            guard engine.settings.vision else { return write("Images are turned off (VISION=off).\n") }
            guard bytes.count <= engine.settings.maxImageBytes else {
                return write("That image is over IMAGE_MAX_KB (\(engine.settings.maxImageBytes / 1024) KB).\n")
            }
            guard let image = ImageFile(bytes) else { return write("That is not a JPEG, PNG, GIF or WebP image.\n") }
            await answer(UserTurn(file.rest, attachments: [image.attachment(bytes)]))
            return
        }
        let name = (file.path as NSString).lastPathComponent
        do {
            let transcription = try await engine.transcribe(
                bytes, fileName: name, mimeType: MediaFile.audioType(name), seconds: MediaFile.oggSeconds(bytes) ?? 0, logger: logger)
            write("🎤 \(transcription.text)\n\n")
            await answer(
                UserTurn(
                    transcription.text,
                    attachments: [Attachment(kind: .audio, mimeType: MediaFile.audioType(name), seconds: transcription.seconds, transcript: transcription.text)],
                    inputCostUSD: transcription.costUSD))
        } catch let error as TranscriptionError {
            write(error.userMessage + "\n")
        } catch {
            write("Stopped.\n")
        }
    }

    private func answer(_ text: String) async {
        await answer(UserTurn(text))
    }

    /// Streams the answer as it comes, then the outcome's notice on a line of its own (after a
    /// partial answer, on the same line).
    private func answer(_ turn: UserTurn) async {
        let write = self.write
        let outcome = await engine.reply(to: turn, conversationID: conversationID) { piece in write(piece) }
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
