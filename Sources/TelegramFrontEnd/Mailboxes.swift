import Synchronization

/// The per-chat queues of the dispatcher, and the counts the status line shows.
public final class Mailboxes: Sendable {
    private struct Mailbox {
        var queue: [Incoming] = []
        /// A task is serving this chat.
        var running = false
        /// It has taken a message out of the queue and is answering it.
        var busy = false
        /// A skipped message was already answered with the overflow notice in this busy period.
        var toldOverflow = false

        /// Messages waiting behind the one being answered (or about to be).
        var waiting: Int { busy ? queue.count : max(0, queue.count - 1) }
    }

    /// What became of a message offered to its chat's mailbox.
    enum Decision {
        /// Behind the one being answered; the chat's task will take it.
        case queued
        /// The chat was idle: start a task to serve it.
        case start
        /// The chat has `maxQueued` waiting already: skipped, and told once per busy period.
        case overflow(tell: Bool)
    }

    /// Messages a chat may have waiting behind the one being answered.
    let maxQueued: Int
    private let boxes = Mutex<[Int64: Mailbox]>([:])
    private let servedChats = Mutex<Set<Int64>>([])

    public init(maxQueued: Int = 3) {
        self.maxQueued = maxQueued
    }

    func enqueue(_ incoming: Incoming, chatID: Int64) -> Decision {
        servedChats.withLock { if $0.count < Self.servedCapacity { $0.insert(chatID) } }
        return boxes.withLock { boxes -> Decision in
            var box = boxes[chatID] ?? Mailbox()
            defer { boxes[chatID] = box }
            if box.running, box.waiting >= maxQueued {
                defer { box.toldOverflow = true }
                return .overflow(tell: !box.toldOverflow)
            }
            box.queue.append(incoming)
            if box.running { return .queued }
            box.running = true
            return .start
        }
    }

    /// The chat's next message, or nil when its queue is empty or the task is cancelled; then the
    /// mailbox is gone (an idle chat holds no memory) and a new message starts a new task.
    func next(_ chatID: Int64) -> Incoming? {
        boxes.withLock { boxes -> Incoming? in
            guard var box = boxes[chatID], !box.queue.isEmpty, !Task.isCancelled else {
                boxes[chatID] = nil
                return nil
            }
            let first = box.queue.removeFirst()
            box.busy = true
            boxes[chatID] = box
            return first
        }
    }

    /// Chats being served right now.
    public var active: Int { boxes.withLock { $0.count } }

    /// Chats being answered and messages waiting behind them, for /metrics.
    public var load: (chats: Int, waiting: Int) {
        boxes.withLock { boxes in (boxes.count, boxes.values.reduce(0) { $0 + $1.waiting }) }
    }

    /// Chats served since start, counted up to `servedCapacity` (a bound, not a guess).
    public var served: Int { servedChats.withLock { $0.count } }
    static let servedCapacity = 100_000
}
