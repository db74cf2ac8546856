import CCurl
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one thread that runs every transfer of an `HTTPClient`.
///
/// It drives libcurl's multi interface by its socket API: libcurl says which sockets to watch
/// (`CURLMOPT_SOCKETFUNCTION`) and when to call back (`CURLMOPT_TIMERFUNCTION`); the thread waits in
/// `epoll_wait` for exactly that, and an eventfd wakes it for work from other threads (a new
/// transfer, a cancel, a reader that caught up). With nothing to do it sleeps with no timeout at all.
/// After each wake-up every reader gets what arrived for it in one resume.
final class EventLoop: @unchecked Sendable {
    enum Command {
        case add(Transfer)
        case remove(Transfer)
        case unpause(Transfer)
        case stop
    }

    /// Work for the event thread; `nil` once it has stopped (and closed `wakeFD`).
    private let commands = Mutex<[Command]?>([])
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
    /// Transfers on the event thread now (for tests and diagnostics).
    let activeCount = Atomic<Int>(0)

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

    /// Queues work for the event thread and wakes it.
    /// Does nothing once the loop has stopped.
    func post(_ command: Command) {
        commands.withLock { queue in
            guard queue != nil else { return }
            queue!.append(command)
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    // MARK: Event thread

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 128)
        var running: Int32 = 0
        while true {
            let timeout: Int32
            if let due = [timerDue, rests.map(\.due).min()].compactMap({ $0 }).min() {
                let left = due - .now
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
            if !runCommands() { break }
            if !rests.isEmpty {
                let now = ContinuousClock.now
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
        }
        shutDown()
    }

    /// Runs queued commands; false once told to stop.
    private func runCommands() -> Bool {
        let queued = commands.withLock { queue in
            defer { queue = [] }
            return queue ?? []
        }
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
        commands.withLock { queue in
            queue = nil
            close(wakeFD)
        }
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
