import Support
import Synchronization

/// The replies that can be stopped right now, by chat and first draft id.
public final class StopRegistry: Sendable {
    private struct Key: Hashable {
        var chat: Int64
        var draft: Int64
    }
    private let signals = Mutex<[Key: ChangeSignal]>([:])

    public init() {}

    func register(chat: Int64, draft: Int64, _ signal: ChangeSignal) {
        signals.withLock { $0[Key(chat: chat, draft: draft)] = signal }
    }

    func remove(chat: Int64, draft: Int64) {
        signals.withLock { _ = $0.removeValue(forKey: Key(chat: chat, draft: draft)) }
    }

    /// Stops the reply that streams `draft` in `chat`.
    @discardableResult
    func stop(chat: Int64, draft: Int64) -> Bool {
        let signal = signals.withLock { signals in
            signals.first { $0.key.chat == chat && DraftID.belongs(draft, toReply: $0.key.draft) }?.value
        }
        signal?.notify()
        return signal != nil
    }
}
