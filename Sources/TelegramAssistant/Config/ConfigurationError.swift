/// Every problem found in the configuration at once, so an operator fixes them in one go.
struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    let problems: [String]
    public var description: String {
        "Configuration is invalid:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}
