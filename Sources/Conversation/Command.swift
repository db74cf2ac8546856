import Foundation

/// A command typed by the user (`/stats`, `/model gpt-4o`): handled by the front end and never sent
/// to the model. How a front end addresses commands (Telegram's `/model@SomeBot`) is its own
/// business: it hands over the command without the address.
public struct Command: Sendable, Equatable {
    /// Lower-cased, without the slash.
    public var name: String
    /// Everything after the command, trimmed.
    public var argument: String

    /// Parses `text` when it starts with `/` followed by a command name; otherwise `nil`.
    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("/") else { return nil }
        let head = trimmed.dropFirst().prefix { !$0.isWhitespace }
        guard Self.isName(head) else { return nil }
        name = head.lowercased()
        argument = trimmed.dropFirst(head.count + 1).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public init(name: String, argument: String) {
        self.name = name.lowercased()
        self.argument = argument
    }

    /// Letters, digits and `_`, at least one.
    public static func isName(_ text: Substring) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }
}
