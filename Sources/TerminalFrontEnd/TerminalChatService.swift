import ServiceLifecycle

/// Runs the terminal chat as a service, so SIGINT (Ctrl-C) and SIGTERM stop it gracefully: the
/// answer in progress is cancelled, saved as partial, and the loop ends.
public struct TerminalChatService: Service {
    let chat: TerminalChat
    let lines: AsyncStream<String>

    public init(chat: TerminalChat, lines: AsyncStream<String>) {
        self.chat = chat
        self.lines = lines
    }

    public func run() async throws {
        let chat = self.chat
        let lines = self.lines
        await cancelWhenGracefulShutdown {
            await chat.run(lines: lines)
        }
    }
}
