/// How hard a commit is pushed to the disk.
public enum Durability: String, Sendable {
    /// `synchronous=FULL`: a commit survives power loss. The default: Telegram is told an update was
    /// received only after its commit, so a commit rolled back by a power cut would lose it.
    case full
    /// `synchronous=NORMAL`: WAL's faster mode; the last commits can roll back on power loss (never
    /// on a crash of the process). For benchmarks and throwaway databases.
    case normal
}
