#if canImport(Glibc)
import Glibc
#endif

/// A thread of its own as a task executor, for work that may block it for a while (the database's
/// maintenance) and so must stay off the event thread, without starting libdispatch's worker pool.
/// It sleeps on a condition variable while it has nothing to do: no timer, no wake-up. The thread
/// ends once the executor is gone.
public final class WorkerThread: TaskExecutor, @unchecked Sendable {
    /// What the thread and those who enqueue share, under `mutex` (allocated: a pthread mutex
    /// must not move).
    private final class Queue: @unchecked Sendable {
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        var jobs: [UnownedJob] = []
        var stopped = false
        /// The executor the jobs run on, set with the first job.
        var executor: UnownedTaskExecutor?

        init() {
            pthread_mutex_init(mutex, nil)
            pthread_cond_init(condition, nil)
        }

        deinit {
            pthread_cond_destroy(condition)
            pthread_mutex_destroy(mutex)
            condition.deallocate()
            mutex.deallocate()
        }
    }
    private let queue = Queue()

    public init(name: String) {
        let context = Unmanaged.passRetained(Start(queue: queue, name: name)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { context in
            let start = Unmanaged<Start>.fromOpaque(context!).takeRetainedValue()
            WorkerThread.nameThisThread(start.name)
            WorkerThread.run(start.queue)
            return nil
        }, context)
        precondition(created == 0, "cannot start the thread \(name): \(created)")
        pthread_detach(thread)
    }

    /// The thread's name in `ps`, `top` and `/proc` (at most 15 bytes).
    private static func nameThisThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        _ = name.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    private final class Start {
        let queue: Queue
        let name: String
        init(queue: Queue, name: String) {
            self.queue = queue
            self.name = String(decoding: name.utf8.prefix(15), as: UTF8.self)
        }
    }

    deinit {
        pthread_mutex_lock(queue.mutex)
        queue.stopped = true
        pthread_cond_signal(queue.condition)
        pthread_mutex_unlock(queue.mutex)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(queue.mutex)
        if queue.executor == nil { queue.executor = asUnownedTaskExecutor() }
        queue.jobs.append(job)
        pthread_cond_signal(queue.condition)
        pthread_mutex_unlock(queue.mutex)
    }

    /// The thread: runs jobs in order until the executor is gone and nothing is left.
    private static func run(_ queue: Queue) {
        var running: [UnownedJob] = []
        while true {
            pthread_mutex_lock(queue.mutex)
            while queue.jobs.isEmpty && !queue.stopped { pthread_cond_wait(queue.condition, queue.mutex) }
            if queue.jobs.isEmpty {
                pthread_mutex_unlock(queue.mutex)
                return
            }
            swap(&running, &queue.jobs)
            let executor = queue.executor!
            pthread_mutex_unlock(queue.mutex)
            for job in running { job.runSynchronously(on: executor) }
            running.removeAll(keepingCapacity: true)
        }
    }
}
