import Support
import Synchronization
import TelegramBotAPI

/// Gathers the messages of an album (one `media_group_id`): Telegram sends each photo as its own
/// update, usually in one batch. The first part is queued as usual; later parts join it instead of
/// queueing, and when its turn comes the handler waits until no part has arrived for `settle`,
/// then answers them all as one turn. Until then the parts stay `received` in the ledger, and their
/// status moves with the first part's from there on.
public final class Albums: Sendable {
    private struct Key: Hashable {
        var chatID: Int64
        var group: String
    }
    private struct Album {
        var parts: [Telegram.Update] = []
        var lastArrival: Duration
    }

    /// How long an album stays open after its latest part.
    let settle: Duration
    let clock: any Clock<Duration>
    let stopwatch: Stopwatch
    private let open = Mutex<[Key: Album]>([:])

    public init(settle: Duration = .milliseconds(600), clock: any Clock<Duration>, stopwatch: Stopwatch) {
        self.settle = settle
        self.clock = clock
        self.stopwatch = stopwatch
    }

    /// Adds `update` to its open album and returns true; false when it opens none (it is then
    /// handled on its own, or starts an album with `start`).
    func join(_ update: Telegram.Update) -> Bool {
        guard let key = Self.key(update) else { return false }
        let now = stopwatch.elapsed
        return open.withLock { albums in
            guard albums[key] != nil else { return false }
            albums[key]?.parts.append(update)
            albums[key]?.lastArrival = now
            return true
        }
    }

    /// Opens an album led by `update` (its first part to arrive).
    func start(_ update: Telegram.Update) {
        guard let key = Self.key(update) else { return }
        let now = stopwatch.elapsed
        open.withLock { $0[key] = Album(lastArrival: now) }
    }

    /// The other parts of the album `lead` opened, once no part has come for `settle`; the album is
    /// then closed (a part arriving later is answered on its own). Empty for a message of no album.
    func collect(_ lead: Telegram.Update) async -> [Telegram.Update] {
        guard let key = Self.key(lead) else { return [] }
        while true {
            guard let last = open.withLock({ $0[key]?.lastArrival }) else { return [] }
            let wait = last + settle - stopwatch.elapsed
            if wait > .zero, (try? await clock.sleep(for: wait)) == nil {
                break  // shutdown: answer what has come
            }
            if wait <= .zero || open.withLock({ $0[key]?.lastArrival }) == last { break }
        }
        return open.withLock { $0.removeValue(forKey: key)?.parts ?? [] }
    }

    private static func key(_ update: Telegram.Update) -> Key? {
        guard let message = update.message, let group = message.media_group_id else { return nil }
        return Key(chatID: message.chat.id, group: group)
    }
}
