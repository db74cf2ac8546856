import Conversation
import Foundation

/// A command as Telegram writes it: `/model gpt-4o`, or in groups `/model@SomeBot gpt-4o`, where
/// the `@botname` says which bot it is for.
struct AddressedCommand: Sendable, Equatable {
    var command: Command
    /// The `@botname` suffix, if any.
    var addressee: String?

    /// Parses `text` when it starts with `/` followed by a command name; otherwise `nil`.
    init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("/") else { return nil }
        let head = trimmed.dropFirst().prefix { !$0.isWhitespace }
        let parts = head.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        guard let name = parts.first, Command.isName(name) else { return nil }
        addressee = parts.count > 1 ? String(parts[1]) : nil
        command = Command(name: String(name), argument: trimmed.dropFirst(head.count + 1).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
