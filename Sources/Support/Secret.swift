/// A secret (the bot token, an API key) that cannot be printed by accident.
///
/// `print`, `String(describing:)`, `dump`, string interpolation and a library's debug log of a
/// value that holds one (swift-service-lifecycle logs every service's description) all show
/// `[redacted]`; only `value`, read where the secret is put on the wire, gives it out.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The secret itself: for an `Authorization` header or a Bot API URL, never for text.
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    public var isEmpty: Bool { value.isEmpty }
    public var description: String { "[redacted]" }
    public var debugDescription: String { "[redacted]" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }

    /// Whether `candidate` is this secret, in time that does not depend on where they differ (a
    /// webhook's secret header comes from anyone who finds the URL).
    public func matches(_ candidate: some Collection<UInt8>) -> Bool {
        let expected = Array(value.utf8)
        var difference = UInt8(truncatingIfNeeded: expected.count ^ candidate.count)
        var index = 0
        for byte in candidate {
            difference |= byte ^ expected[index % max(expected.count, 1)]
            index += 1
        }
        return difference == 0 && !expected.isEmpty
    }
}
