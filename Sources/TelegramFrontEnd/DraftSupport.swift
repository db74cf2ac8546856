import Synchronization

/// Whether the Bot API server accepts `sendMessageDraft`; learned once, shared by all replies.
public final class DraftSupport: Sendable {
    private let supported = Mutex(true)
    public init() {}
    var isSupported: Bool { supported.withLock { $0 } }
    func markUnsupported() { supported.withLock { $0 = false } }
}
