import Configuration
import Foundation

/// The configuration variables as read through swift-configuration's `ConfigReader` (the process
/// environment first, then the env file), checked one by one. Every problem is collected, so the
/// operator sees them all in one message.
///
/// Text values are trimmed, may be quoted, and count as unset when blank. Numbers go through the
/// reader's typed getters, then our range checks; a problem quotes what was written.
struct ConfigValues {
    let reader: ConfigReader
    private(set) var problems: [String] = []

    /// Variables whose values never appear in a log or a problem.
    static let secrets: Set<String> = ["OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN", "TRANSCRIPTION_API_KEY", "DATABASE_URL", "TELEGRAM_WEBHOOK_SECRET"]

    init(_ reader: ConfigReader) {
        self.reader = reader
    }

    /// `OPENAI_API_KEY` is the key `openai.api.key`, as `EnvironmentVariablesProvider` spells it.
    static func key(_ name: String) -> ConfigKey {
        ConfigKey(name.lowercased().split(separator: "_").map(String.init))
    }

    mutating func problem(_ text: String) {
        problems.append(text)
    }

    /// The value as written, trimmed and unquoted; nil when unset or blank.
    func text(_ name: String) -> String? {
        guard var text = reader.string(forKey: Self.key(name), isSecret: Self.secrets.contains(name))?.trimmingCharacters(in: .whitespaces)
        else { return nil }
        if text.count >= 2, let first = text.first, first == "\"" || first == "'", text.last == first {
            text = String(text.dropFirst().dropLast())
        }
        return text.isEmpty ? nil : text
    }

    /// A whole number in `range`, or `fallback` when unset.
    mutating func integer(_ name: String, default fallback: Int, in range: ClosedRange<Int>, describe: String? = nil) -> Int {
        guard let text = text(name) else { return fallback }
        guard let value = reader.int(forKey: Self.key(name)) ?? Int(text), range.contains(value) else {
            let upper = range.upperBound == .max ? "" : " to \(range.upperBound)"
            problem("\(name) must be \(describe ?? "a whole number from \(range.lowerBound)\(upper)"), got \"\(text)\"")
            return fallback
        }
        return value
    }

    /// A number in `range`, or `fallback` when unset.
    mutating func number(_ name: String, default fallback: Double, in range: ClosedRange<Double>, describe: String) -> Double {
        guard let text = text(name) else { return fallback }
        guard let value = reader.double(forKey: Self.key(name)) ?? Double(text), range.contains(value) else {
            problem("\(name) must be \(describe), got \"\(text)\"")
            return fallback
        }
        return value
    }

    /// true/false, 1/0, yes/no or on/off (the reader's own booleans lack on/off); false when unset.
    mutating func flag(_ name: String, default fallback: Bool = false) -> Bool {
        guard let text = text(name) else { return fallback }
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default:
            problem("\(name) must be on or off (true or false), got \"\(text)\"")
            return fallback
        }
    }

    /// A comma-separated list, blanks dropped.
    func list(_ name: String) -> [String] {
        (text(name) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Comma-separated numeric ids; each one that is not a number is a problem.
    mutating func ids(_ name: String) -> Set<Int64> {
        var result: Set<Int64> = []
        for part in list(name) {
            if let id = Int64(part) {
                result.insert(id)
            } else {
                problem("\(name) must be comma-separated numeric Telegram user ids, got \"\(part)\"")
            }
        }
        return result
    }
}
