import CCurl
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one thread that runs every transfer of an `HTTPClient`, and the sleeps of its `clock`.
///
/// It drives libcurl's multi interface by its socket API: libcurl says which sockets to watch
/// (`CURLMOPT_SOCKETFUNCTION`) and when to call back (`CURLMOPT_TIMERFUNCTION`); the thread waits in
/// `epoll_wait` for exactly that and for the earliest sleeper, and an eventfd wakes it for work from
/// other threads (a new transfer, a cancel, a reader that caught up, a sleeper due sooner) while it
/// sleeps. With nothing to do it sleeps with no timeout at all. After each wake-up every reader gets
/// what arrived for it in one resume.
///
/// It is also a `TaskExecutor`: a task that prefers it (`HTTPClient.executor`) runs its jobs here,
/// after each wake-up's I/O. A reader resumed by that I/O then runs on this same thread, without
/// waking another one, which is most of what a reply costs when it streams alone. Its jobs must not
/// block for long: every transfer waits meanwhile.
final class EventLoop: @unchecked Sendable {
    enum Command {
        case add(Transfer)
        case remove(Transfer)
        case unpause(Transfer)
        case stop
    }

    /// How a sleep on the loop's clock ended.
    enum SleepEnd {
        case due, cancelled
        /// The thread had stopped: the sleeper must wait elsewhere.
        case loopStopped
    }

    /// What other threads hand the event thread.
    struct Shared {
        var commands: [Command] = []
        /// Set once the thread has stopped (and closed `wakeFD`).
        var stopped = false
        /// The thread waits in `epoll_wait`: new work must wake it. `wakesAt` is when it wakes by
        /// itself (nil: never).
        var asleep = false
        var wakesAt: ContinuousClock.Instant?
        /// Tasks sleeping on the loop's clock, by id; `due` orders them, soonest last (a sleeper
        /// cancelled early stays there until it is due, then is skipped).
        var sleepers: [Int: CheckedContinuation<SleepEnd, Never>] = [:]
        var due: [(at: ContinuousClock.Instant, id: Int)] = []
        /// Jobs of tasks that prefer this thread (`TaskExecutor`).
        var jobs: [UnownedJob] = []
    }
    private let shared = Mutex(Shared())
    private let nextSleeper = Atomic<Int>(0)
    private let wakeFD: Int32
    private let epollFD: Int32

    // Event-thread state.
    private let multi: UnsafeMutableRawPointer
    private var transfers: [UnsafeMutableRawPointer: Transfer] = [:]
    private var watched: Set<Int32> = []
    /// When libcurl wants `CURL_SOCKET_TIMEOUT`, in `ContinuousClock` terms.
    private var timerDue: ContinuousClock.Instant?
    private var touched: [Transfer] = []
    /// Resting transfers and when each reads again (a handful at most: a list beats a heap).
    private var rests: [(due: ContinuousClock.Instant, transfer: Transfer)] = []
    /// The jobs being run (swapped with `Shared.jobs`, so neither array is reallocated).
    private var running: [UnownedJob] = []
    /// Transfers on the event thread now (for tests and diagnostics).
    let activeCount = Atomic<Int>(0)
    /// Tasks sleeping on the loop's clock now, and whether the thread has stopped (for tests).
    var sleepersWaiting: Int { shared.withLock { $0.sleepers.count } }
    var hasStopped: Bool { shared.withLock { $0.stopped } }

    init(maxConnectionsPerHost: Int = 0) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        multi = curl_multi_init()
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        precondition(epollFD >= 0 && wakeFD >= 0, "epoll or eventfd unavailable")
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = wakeFD
        epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event)

        let context = Unmanaged.passUnretained(self).toOpaque()
        ccurl_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, context)
        ccurl_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, context)
        ccurl_multi_setopt_socket(multi) { _, socket, what, context, _ in
            Unmanaged<EventLoop>.fromOpaque(context!).takeUnretainedValue().watch(socket, what)
            return 0
        }
        ccurl_multi_setopt_timer(multi) { _, milliseconds, context in
            Unmanaged<EventLoop>.fromOpaque(context!).takeUnretainedValue().setTimer(milliseconds)
            return 0
        }
        // No cap per host (0); HTTP/2 streams share a connection where the server speaks it.
        ccurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost)
        ccurl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))

        // The thread holds the loop until `.stop`. A plain detached pthread: nothing here needs
        // Foundation's `Thread`.
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { box in
            let loop = Unmanaged<EventLoop>.fromOpaque(box!).takeRetainedValue()
            ccurl_name_thread("curl-event-loop")
            loop.run()
            return nil
        }, box)
        precondition(created == 0, "cannot start the HTTP event thread: \(created)")
        pthread_detach(thread)
    }

    /// Queues work for the event thread, waking it if it sleeps.
    /// Does nothing once the loop has stopped.
    func post(_ command: Command) {
        shared.withLock { shared in
            guard !shared.stopped else { return }
            shared.commands.append(command)
            wakeIfAsleep(&shared)
        }
    }

    /// Under the lock, so that `wakeFD` cannot be closed meanwhile.
    private func wakeIfAsleep(_ shared: inout Shared) {
        guard shared.asleep else { return }
        shared.asleep = false
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Resumes the calling task at `deadline`, at once when it is cancelled, and without waiting
    /// once the loop has stopped.
    func sleep(until deadline: ContinuousClock.Instant) async -> SleepEnd {
        let id = nextSleeper.add(1, ordering: .relaxed).oldValue
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<SleepEnd, Never>) in
                let early = shared.withLock { shared -> SleepEnd? in
                    if shared.stopped { return .loopStopped }
                    if Task.isCancelled { return .cancelled }
                    shared.sleepers[id] = continuation
                    // Soonest last: after every sleeper due at or after this one.
                    var (low, high) = (0, shared.due.count)
                    while low < high {
                        let middle = (low + high) / 2
                        if shared.due[middle].at >= deadline { low = middle + 1 } else { high = middle }
                    }
                    shared.due.insert((deadline, id), at: low)
                    if shared.wakesAt.map({ $0 > deadline }) ?? true { wakeIfAsleep(&shared) }
                    return nil
                }
                if let early { continuation.resume(returning: early) }
            }
        } onCancel: {
            shared.withLock { $0.sleepers.removeValue(forKey: id) }?.resume(returning: .cancelled)
        }
    }

    // MARK: Event thread

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 128)
        var running: Int32 = 0
        var due: [CheckedContinuation<SleepEnd, Never>] = []
        while true {
            let ownDue = rests.reduce(timerDue) { Self.earliest($0, $1.due) }
            // Decide to sleep under the lock: work posted after this wakes the thread.
            let (hasWork, wakesAt) = shared.withLock { shared -> (Bool, ContinuousClock.Instant?) in
                if !shared.commands.isEmpty || !shared.jobs.isEmpty { return (true, nil) }
                let wakesAt = Self.earliest(ownDue, shared.due.last?.at)
                (shared.asleep, shared.wakesAt) = (true, wakesAt)
                return (false, wakesAt)
            }
            let timeout: Int32
            if hasWork {
                timeout = 0
            } else if let wakesAt {
                let left = wakesAt - .now
                // Round up: waking a little early would only spin.
                timeout = left <= .zero ? 0 : Int32(min((left / .milliseconds(1)).rounded(.up), 60_000))
            } else {
                timeout = -1
            }
            let count = epoll_wait(epollFD, &events, Int32(events.count), timeout)
            // On our own epoll descriptor and buffer, epoll_wait fails only with EINTR (retried) or
            // a programming error (EBADF, EFAULT, EINVAL). Stopping the process is the honest
            // answer to that: every transfer would hang otherwise, and after systemd restarts the
            // bot, updates still open in the ledger are answered, so nothing is lost.
            if count < 0 && errno != EINTR { fatalError("epoll_wait failed: \(errno)") }
            let now = ContinuousClock.now
            let queued = shared.withLock { shared -> [Command] in
                (shared.asleep, shared.wakesAt) = (false, nil)
                while let last = shared.due.last, last.at <= now {
                    shared.due.removeLast()
                    if let sleeper = shared.sleepers.removeValue(forKey: last.id) { due.append(sleeper) }
                }
                defer { shared.commands.removeAll(keepingCapacity: true) }
                return shared.commands
            }
            for sleeper in due { sleeper.resume(returning: .due) }
            due.removeAll(keepingCapacity: true)
            for index in 0..<max(Int(count), 0) {
                let event = events[index]
                let fd = event.data.fd
                if fd == wakeFD {
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                    continue
                }
                var mask: Int32 = 0
                if event.events & EPOLLIN.rawValue != 0 { mask |= CURL_CSELECT_IN }
                if event.events & EPOLLOUT.rawValue != 0 { mask |= CURL_CSELECT_OUT }
                if event.events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { mask |= CURL_CSELECT_ERR }
                curl_multi_socket_action(multi, fd, mask, &running)
            }
            if !run(queued) { break }
            if !rests.isEmpty {
                let due = rests.filter { $0.due <= now }
                rests.removeAll { $0.due <= now }
                for rest in due { rest.transfer.loopEndRest() }
            }
            if let due = timerDue, due <= .now {
                timerDue = nil
                curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running)
            }
            collectFinished()
            for transfer in touched { transfer.loopFlush() }
            touched.removeAll(keepingCapacity: true)
            runJobs()
        }
        shutDown()
    }

    /// Runs the jobs queued so far; the jobs they queue run on the next turn, after its I/O.
    private func runJobs() {
        shared.withLock { swap(&$0.jobs, &running) }
        guard !running.isEmpty else { return }
        let executor = asUnownedTaskExecutor()
        for job in running { job.runSynchronously(on: executor) }
        running.removeAll(keepingCapacity: true)
    }

    /// Runs queued commands; false once told to stop.
    private func run(_ queued: [Command]) -> Bool {
        for command in queued {
            switch command {
            case .add(let transfer):
                if transfer.state.withLock({ $0.ended }) { continue }  // cancelled before it started
                transfers[transfer.easy] = transfer
                transfer.loopActive = true
                activeCount.add(1, ordering: .relaxed)
                curl_multi_add_handle(multi, transfer.easy)
            case .remove(let transfer):
                detach(transfer)
            case .unpause(let transfer):
                transfer.loopUnpause()
            case .stop:
                return false
            }
        }
        return true
    }

    private func detach(_ transfer: Transfer) {
        guard transfer.loopActive else { return }
        transfer.loopActive = false
        activeCount.subtract(1, ordering: .relaxed)
        curl_multi_remove_handle(multi, transfer.easy)
        rests.removeAll { $0.transfer === transfer }
        transfers[transfer.easy] = nil
    }

    private func collectFinished() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                let transfer = transfers[easy]
            else { continue }
            let result = message.pointee.data.result
            var error: (any Error)?
            if result != CURLE_OK {
                var connectTime: curl_off_t = 0
                _ = withUnsafeMutablePointer(to: &connectTime) {
                    ccurl_easy_getinfo_pointer(easy, CURLINFO_CONNECT_TIME_T, UnsafeMutableRawPointer($0).assumingMemoryBound(to: UnsafeMutableRawPointer?.self))
                }
                error = HTTPClientError(curl: result, connected: connectTime > 0)
            }
            detach(transfer)
            transfer.loopFinish(error)
        }
    }

    private func shutDown() {
        for transfer in Array(transfers.values) {
            detach(transfer)
            transfer.loopFinish(CancellationError())
        }
        curl_multi_cleanup(multi)
        close(epollFD)
        let (sleepers, jobs) = shared.withLock { shared in
            shared.stopped = true
            close(wakeFD)
            defer { (shared.sleepers, shared.jobs) = ([:], []) }
            return (shared.sleepers.values, shared.jobs)
        }
        // They finish their sleeps on another clock (see `EventLoopClock`).
        for sleeper in sleepers { sleeper.resume(returning: .loopStopped) }
        // Tasks that prefer this thread go on in Swift's global pool, as later jobs do.
        for job in jobs { globalConcurrentExecutor.enqueue(job) }
    }

    private static func earliest(_ a: ContinuousClock.Instant?, _ b: ContinuousClock.Instant?) -> ContinuousClock.Instant? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }

    /// Lets `transfer` read again after `interval` (event thread).
    func wake(_ transfer: Transfer, after interval: Duration) {
        rests.append((.now + interval, transfer))
    }

    /// Called by libcurl (on this thread) when the data of `transfer` arrived or it was unpaused.
    func touch(_ transfer: Transfer) {
        touched.append(transfer)
    }

    private func watch(_ socket: curl_socket_t, _ what: Int32) {
        if what == CURL_POLL_REMOVE {
            if watched.remove(socket) != nil { epoll_ctl(epollFD, EPOLL_CTL_DEL, socket, nil) }
            return
        }
        var event = epoll_event()
        event.events = (what & CURL_POLL_IN != 0 ? EPOLLIN.rawValue : 0) | (what & CURL_POLL_OUT != 0 ? EPOLLOUT.rawValue : 0)
        event.data.fd = socket
        // A socket libcurl closed without telling us leaves epoll by itself, and its number may come
        // back: whichever of add and modify fails, the other is right.
        let first = watched.contains(socket) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD
        if epoll_ctl(epollFD, first, socket, &event) != 0 {
            epoll_ctl(epollFD, first == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket, &event)
        }
        watched.insert(socket)
    }

    private func setTimer(_ milliseconds: Int) {
        timerDue = milliseconds < 0 ? nil : .now + .milliseconds(milliseconds)
    }
}

extension EventLoop: TaskExecutor {
    /// Queues `job` for the event thread, waking it if it sleeps; once the thread has stopped, the
    /// job runs in Swift's global pool instead.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let queued = shared.withLock { shared -> Bool in
            guard !shared.stopped else { return false }
            shared.jobs.append(job)
            wakeIfAsleep(&shared)
            return true
        }
        if !queued { globalConcurrentExecutor.enqueue(job) }
    }
}
