import GRDB

/// Where an update stands. `answering` survives only a crash: the reply may be half-sent.
public enum UpdateStatus: String, Sendable, Codable, DatabaseValueConvertible {
    case received, answering, handled
}
