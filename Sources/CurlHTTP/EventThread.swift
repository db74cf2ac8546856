/// The one thread of a process that runs its HTTP transfers (every `HTTPClient` made on it), the
/// sleeps of its `clock` and, as a task executor, the jobs of the tasks that prefer it.
///
/// A process whose tasks all prefer it keeps libdispatch's worker pool from ever starting, and with
/// it the pool's monitor, a timer that wakes the process every second for as long as it lives. The
/// thread stops once the last reference to it is gone (each client holds one); tasks that still
/// prefer it then go on in Swift's global pool.
public final class EventThread: Sendable {
    let loop: EventLoop

    public init() {
        loop = EventLoop()
    }

    deinit {
        loop.post(.stop)
    }

    /// For tasks that should run here: their jobs run between the thread's I/O, so a response
    /// that arrives resumes its reader without waking another thread. For work that never blocks
    /// for long: every transfer waits meanwhile.
    public var executor: any TaskExecutor { loop }

    /// The clock whose sleeps this thread keeps, at no cost beyond the wake-up that ends them.
    public var clock: EventLoopClock { EventLoopClock(loop: loop) }
}
