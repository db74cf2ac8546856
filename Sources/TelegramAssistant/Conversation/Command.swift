import Foundation

/// A command typed by the user (`/stats`, `/model gpt-4o`, `/model@SomeBot gpt-4o`): handled by the
/// front end and never sent to the model.
public struct Command: Sendable, Equatable {
    /// Lower-cased, without the slash and without any `@botname`.
    public var name: String
    /// The `@botname` suffix, if any (Telegram groups address commands to one bot).
    public var addressee: String?
    /// Everything after the command, trimmed.
    public var argument: String

    /// Parses `text` when it starts with `/` followed by a command name; otherwise `nil`.
    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("/") else { return nil }
        let head = trimmed.dropFirst().prefix { !$0.isWhitespace }
        let parts = head.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, !first.isEmpty,
            first.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        else { return nil }
        name = first.lowercased()
        addressee = parts.count > 1 ? String(parts[1]) : nil
        argument = trimmed.dropFirst(head.count + 1).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
