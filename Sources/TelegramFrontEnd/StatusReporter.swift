import ServiceLifecycle
import Support
import Synchronization

/// Tells systemd the bot is alive (`WATCHDOG=1`) and what it is doing (`STATUS=`).
///
/// The watchdog means "the process runs and its polling loop turns", not "Telegram answered": an
/// outage of Telegram or of the network must not get a healthy bot killed. So the pings come from
/// a timer of their own, and stop only when the loop has not started a round for longer than a
/// healthy loop ever takes (or when the process is frozen). The status goes out after a poll when
/// it has changed, so `systemctl status` is at most one poll behind.
public final class StatusReporter: Service, Sendable, CustomStringConvertible {
    private let notifier: SystemdNotifier
    private let mailboxes: Mailboxes
    private let clock: any Clock<Duration>
    /// The longest a healthy polling loop goes without starting a new round.
    private let stallLimit: Duration
    private let stopwatch: Stopwatch
    private let last = Mutex<(turn: Duration?, poll: Duration?, status: String)>((nil, nil, ""))
    /// How updates come in.
    private let mode = Mutex(Mode.polling)

    enum Mode {
        /// This process polls Telegram.
        case polling
        /// Webhook mode: Telegram pushes, nothing polls; Telegram accepted the webhook at start.
        case pushed
        /// Another replica polls; this one answers what the ledger holds for its chats.
        case standby
    }

    /// `stallLimit`: the longest a healthy polling loop goes without a new round.
    public init(notifier: SystemdNotifier, mailboxes: Mailboxes, stallLimit: Duration, clock: any Clock<Duration>) {
        self.notifier = notifier
        self.mailboxes = mailboxes
        self.stallLimit = stallLimit
        self.clock = clock
        stopwatch = Stopwatch(clock)
    }

    public var description: String { "StatusReporter" }

    /// The longest a healthy polling loop goes without a new round: a long poll that times out at
    /// the HTTP level, then the longest backoff, plus a margin.
    public static func stallLimit(pollTimeout: Int) -> Duration {
        .seconds(pollTimeout + 15 + 5) + UpdateIntake.maxBackoff + .seconds(5)
    }

    /// Runs the watchdog (when systemd asked for one) until the group shuts down.
    public func run() async {
        guard notifier.watchdogInterval != nil else {
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown { await self.runWatchdog() }
    }

    /// The polling loop starts a round.
    func turned() {
        let now = stopwatch.elapsed
        last.withLock { $0.turn = now }
    }

    /// Pings every `watchdogInterval` (half of WatchdogSec=) until cancelled, while the polling loop
    /// has turned within `stallLimit`. Without a watchdog it returns at once.
    func runWatchdog() async {
        guard let interval = notifier.watchdogInterval else { return }
        while !Task.isCancelled {
            do {
                try await clock.sleep(for: interval)
            } catch {
                return
            }
            if !isStalled { notifier.notify("WATCHDOG=1") }
        }
    }

    /// The polling loop has not started a round for longer than a healthy loop ever takes
    /// (false before its first round): the watchdog stops, and /healthz fails.
    public var isStalled: Bool {
        guard let turn = last.withLock({ $0.turn }) else { return false }
        return stopwatch.elapsed - turn > stallLimit
    }

    /// Telegram answered a poll within `stallLimit` (for /readyz).
    public var telegramAnswers: Bool {
        if mode.withLock({ $0 }) != .polling { return true }
        guard let poll = last.withLock({ $0.poll }) else { return false }
        return stopwatch.elapsed - poll <= stallLimit
    }

    /// Chats being answered and messages waiting behind them.
    public var load: (chats: Int, waiting: Int) { mailboxes.load }

    /// Webhook mode from now on.
    func pushed() {
        mode.withLock { $0 = .pushed }
    }

    /// A replica starts or stops polling (it leads, or another one does): a standby has no loop
    /// that must turn.
    func polling(_ on: Bool) {
        mode.withLock { $0 = on ? .polling : .standby }
        if !on { last.withLock { $0.turn = nil } }
    }

    /// This process polls Telegram (for /metrics: the leader of replicas).
    public var isPolling: Bool { mode.withLock { $0 } == .polling }

    /// READY=1 with the first status.
    func ready() {
        let summary = self.summary
        last.withLock { $0.status = summary }
        notifier.notify("READY=1\nSTATUS=\(summary)")
    }

    func polled() {
        let now = stopwatch.elapsed
        last.withLock { $0.poll = now }
        guard notifier.isEnabled else { return }
        let summary = self.summary
        let changed = last.withLock { last -> Bool in
            defer { last.status = summary }
            return summary != last.status
        }
        if changed { notifier.notify("STATUS=\(summary)") }
    }

    /// The one-line status `systemctl status` shows.
    var summary: String {
        let served = mailboxes.served
        let count = served >= Mailboxes.servedCapacity ? "\(served)+" : "\(served)"
        let how =
            switch mode.withLock({ $0 }) {
            case .polling: "Polling"
            case .pushed: "Webhook"
            case .standby: "Standby (another replica polls)"
            }
        return "\(how); \(count) chat\(served == 1 ? "" : "s") served since start, \(mailboxes.active) replying now"
    }
}
