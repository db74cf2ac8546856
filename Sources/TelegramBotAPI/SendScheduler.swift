import Support

/// Telegram's flood limits as budgets. Defaults follow the Bot FAQ: about one message per second
/// per chat, 20 per minute per group, about 30 per second overall; edits and drafts count too.
/// `scale` multiplies every rate (tests run the same shapes faster).
public struct TelegramLimits: Sendable {
    var perChatPerSecond: Double = 1
    var perGroupPerMinute: Double = 20
    /// Telegram says about 30; a tenth is kept back, because the budget is spent when a call is let
    /// go and Telegram counts it when it arrives: a busy host or network can bunch calls on the way.
    var globalPerSecond: Double = 27
    /// How many calls may go back to back before the global rate applies.
    var globalBurst: Double = 5
    /// Calls let go but not answered yet, at most. The budget is spent when a call is let go and
    /// Telegram counts it when it arrives: when the network or the host stalls, calls let go on time
    /// would otherwise pile up and reach Telegram all at once.
    var maxInFlight = 8
    public var scale: Double = 1

    public init(scale: Double = 1) { self.scale = scale }
}

/// The one budget keeper for every call that shows something in a chat.
///
/// Final messages wait for budget and are never dropped; intermediate updates (drafts, edits while
/// streaming) only go when budget is free *and* no final message is waiting anywhere, so the budget
/// goes first to what users need most, and streaming thins out when the bot is busy. A 429 blocks
/// the chat for `retry_after` (and everything, when several chats are limited at once).
public actor SendScheduler {
    private let limits: TelegramLimits
    private let clock: any Clock<Duration>
    private let stopwatch: Stopwatch
    private var chats: [Int64: TokenBucket] = [:]
    private var groups: [Int64: TokenBucket] = [:]
    private var global: TokenBucket
    private var blockedUntil: [Int64: Duration] = [:]
    private var globalBlockedUntil: Duration = .zero
    private var recentLimits: [(chat: Int64, at: Duration)] = []
    private var waitingFinals = 0
    private var inFlight = 0

    public init(limits: TelegramLimits = TelegramLimits(), clock: any Clock<Duration>) {
        self.limits = limits
        self.clock = clock
        stopwatch = Stopwatch(clock)
        global = TokenBucket(capacity: limits.globalBurst, perSecond: limits.globalPerSecond * limits.scale, now: .zero)
    }

    /// Replicas that share one bot (and one database) split Telegram's global budget evenly: each
    /// gets its share of the rate and of the burst. The per-chat and per-group budgets need no
    /// split, as one replica at a time answers a chat (`ChatLeases`).
    public func shareGlobalBudget(among replicas: Int) {
        let replicas = Double(max(1, replicas))
        let now = stopwatch.elapsed
        global.refill(now)
        let capacity = max(1, limits.globalBurst / replicas)
        var shared = TokenBucket(capacity: capacity, perSecond: limits.globalPerSecond * limits.scale / replicas, now: now)
        guard shared.capacity != global.capacity || shared.perSecond != global.perSecond else { return }
        // What was already spent stays spent.
        shared.spend(max(0, global.capacity - global.tokens))
        global = shared
    }

    /// Waits until a final (must-deliver) call to `chat` may go, and spends its budget.
    func acquireFinal(chat: Int64, isGroup: Bool) async throws {
        waitingFinals += 1
        defer { waitingFinals -= 1 }
        while true {
            let wait = self.wait(chat: chat, isGroup: isGroup)
            guard wait == .zero else {
                try await clock.sleep(for: wait)
                continue
            }
            if inFlight < limits.maxInFlight {
                spend(chat: chat, isGroup: isGroup)
                return
            }
            try await waitForSlot()  // full of calls in flight: woken when one ends
        }
    }

    /// A call let go by `acquireFinal` or `tryAcquireIntermediate` has its answer (or failed): the
    /// longest-waiting final may go.
    func finished() {
        inFlight = max(0, inFlight - 1)
        if !slotWaiters.isEmpty { slotWaiters.removeFirst().continuation.resume() }
    }

    /// Finals waiting for a call in flight to end, oldest first.
    private var slotWaiters: [(id: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    private var lastWaiterID: UInt64 = 0

    /// Suspends until `finished` wakes this final, or until the task is cancelled (shutdown).
    private func waitForSlot() async throws {
        lastWaiterID += 1
        let id = lastWaiterID
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume()
                } else {
                    slotWaiters.append((id, continuation))
                }
            }
        } onCancel: {
            // Where the canceller's tasks run (the event thread): not Swift's global pool, whose
            // first use would start libdispatch's once-a-second worker-pool monitor.
            Task(executorPreference: TaskExecutors.preferred) { await self.stopWaiting(id) }
        }
        try Task.checkCancellation()
    }

    private func stopWaiting(_ id: UInt64) {
        if let index = slotWaiters.firstIndex(where: { $0.id == id }) { slotWaiters.remove(at: index).continuation.resume() }
    }

    /// Calls let go and not answered yet.
    var callsInFlight: Int { inFlight }

    /// Spends budget for an intermediate update if it can go right now without delaying any final
    /// message; otherwise returns false and the caller shows the user a later, fuller text instead.
    func tryAcquireIntermediate(chat: Int64, isGroup: Bool) -> Bool {
        guard waitingFinals == 0, inFlight < limits.maxInFlight, wait(chat: chat, isGroup: isGroup) == .zero else { return false }
        // Keep some global headroom for finals that have not asked yet.
        // (Two tokens; one where a replica's share of the burst is small.)
        guard global.tokens >= min(2, max(1, global.capacity - 1)) else { return false }
        spend(chat: chat, isGroup: isGroup)
        return true
    }

    /// Final calls waiting for budget right now.
    var finalsWaiting: Int { waitingFinals }

    /// Records a 429: the chat waits `retryAfter`; when several chats are limited within a second the
    /// limit is global and everything waits.
    public func rateLimited(chat: Int64, retryAfter: Int) {
        let now = stopwatch.elapsed
        let until = now + .seconds(max(1, retryAfter))
        blockedUntil[chat] = max(blockedUntil[chat] ?? .zero, until)
        recentLimits.removeAll { now - $0.at > .seconds(1) }
        recentLimits.append((chat, now))
        if Set(recentLimits.map(\.chat)).count >= 3 { globalBlockedUntil = max(globalBlockedUntil, until) }
    }

    /// How long the caller would wait for a final call now (zero when it could go at once).
    func wait(chat: Int64, isGroup: Bool) -> Duration {
        let now = stopwatch.elapsed
        global.refill(now)
        var waits = [global.wait(), (blockedUntil[chat] ?? .zero) - now, globalBlockedUntil - now]
        var chatBucket = chats[chat] ?? bucket(perSecond: limits.perChatPerSecond, now: now)
        chatBucket.refill(now)
        chats[chat] = chatBucket
        waits.append(chatBucket.wait())
        if isGroup {
            var groupBucket = groups[chat] ?? bucket(perSecond: (limits.perGroupPerMinute - 1) / 60, now: now)
            groupBucket.refill(now)
            groups[chat] = groupBucket
            waits.append(groupBucket.wait())
        }
        return max(.zero, waits.max() ?? .zero)
    }

    /// A bucket of one token: no bursts per chat or group, so even a sliding window sees the rate.
    private func bucket(perSecond: Double, now: Duration) -> TokenBucket {
        TokenBucket(capacity: 1, perSecond: perSecond * limits.scale, now: now)
    }

    private func spend(chat: Int64, isGroup: Bool) {
        inFlight += 1
        global.spend()
        chats[chat]?.spend()
        if isGroup { groups[chat]?.spend() }
        if chats.count > 10_000 { forgetIdleChats() }
    }

    /// Full buckets carry no information: drop them so memory follows active chats only.
    private func forgetIdleChats() {
        let now = stopwatch.elapsed
        chats = chats.filter { !$0.value.isFull(at: now) }
        groups = groups.filter { !$0.value.isFull(at: now) }
        blockedUntil = blockedUntil.filter { $0.value > now }
    }
}
