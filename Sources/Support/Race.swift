import Synchronization

/// Runs `operation` beside `watcher`, and the first to end decides:
/// - the operation ends: its value (or error) is the result, and the watcher is cancelled;
/// - the watcher throws: the operation is cancelled and that error is the result;
/// - the watcher returns: the operation is cancelled, and its own result (what it makes of the
///   cancellation, such as a partial answer) is the result.
///
/// The one way this code base runs something against a deadline, a stop button or a shutdown.
public func race<T: Sendable>(
    _ operation: @escaping @Sendable () async throws -> T,
    against watcher: @escaping @Sendable () async throws -> Void
) async throws -> T {
    // nil: the watcher returned.
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await watcher()
            return nil
        }
        defer { group.cancelAll() }
        while let next = try await group.next() {
            if let value = next { return value }
            group.cancelAll()  // the watcher returned: the operation ends on its own terms
        }
        throw CancellationError()  // unreachable: the operation always ends
    }
}

/// Runs `operation` to its end even when the calling task is cancelled: for one request that a
/// user must see whole or not at all. Cancelling a send half-way could leave Telegram with the
/// message while we think it failed, and the retry would show it twice. No deadline of ours cuts it
/// either; the HTTP client's own timeout bounds it, and a send that times out is an ambiguous
/// failure, reported as such.
public func shielded<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    // An unstructured task does not inherit cancellation; it is awaited here, never left behind.
    try await Task(executorPreference: TaskExecutors.preferred) { try await operation() }.value
}

/// Runs `operation`, letting it outlive the caller's cancellation by `delay`: when the caller is
/// cancelled, the operation is cancelled `delay` later if it is still running. For the final text
/// of a reply that shutdown cut off: it still goes out when Telegram's budget allows it within
/// moments, while a long `retry_after` is left to the next start instead of holding up the exit.
public func withCancellationDelay<T: Sendable>(
    _ delay: Duration, clock: any Clock<Duration>, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let callerCancelled = ChangeSignal()
    return try await withTaskCancellationHandler {
        try await shielded {
            try await race(operation) {
                await callerCancelled.wait()
                guard !Task.isCancelled else { return }  // the operation ended first
                try await clock.sleep(for: delay)
                throw CancellationError()
            }
        }
    } onCancel: {
        callerCancelled.notify()
    }
}

/// Waits for `operation` at most `limit`, and past it throws `DeadlineExceeded` without waiting
/// any longer: for a call that may never answer and never notice cancellation, such as a query on a
/// connection whose server went away. The operation runs in a task of its own, which the caller's
/// cancellation does not reach (a heartbeat begun is best finished), and is cancelled at the
/// deadline; the caller makes it end for good (closes its connection).
public func abandoning<T: Sendable>(
    after limit: Duration, clock: any Clock<Duration> = ContinuousClock(), _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let tasks = TaskPair()
    return try await abandon(operation, tasks: tasks) {
        try await clock.sleep(for: limit)
        throw DeadlineExceeded(limit: limit)
    }
}

/// Runs `operation` beside `watcher`, like `race`, except that nothing is awaited once the result
/// is known: when the watcher ends first (with its error, or `Abandoned` when it returns), or the
/// caller is cancelled, the operation is cancelled and left behind. For work that may never notice
/// cancellation, such as a query whose connection's server went away; the caller then makes it end
/// for good (closes its connection). When the operation ends first, the watcher is cancelled.
public func abandoning<T: Sendable>(
    _ operation: @escaping @Sendable () async throws -> T, when watcher: @escaping @Sendable () async throws -> Void
) async throws -> T {
    let tasks = TaskPair()
    return try await withTaskCancellationHandler {
        try await abandon(operation, tasks: tasks, when: watcher)
    } onCancel: {
        tasks.cancel()
    }
}

/// `operation` and `watcher` in tasks of their own; the first to end resumes the caller, after
/// cancelling both.
private func abandon<T: Sendable>(
    _ operation: @escaping @Sendable () async throws -> T, tasks: TaskPair, when watcher: @escaping @Sendable () async throws -> Void
) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let once = ResumeOnce(continuation)
        let operationTask = Task(executorPreference: TaskExecutors.preferred) {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            once.resume(with: result, after: tasks.cancel)
        }
        let watcherTask = Task(executorPreference: TaskExecutors.preferred) {
            let result: Result<T, any Error>
            do {
                try await watcher()
                result = .failure(Abandoned())
            } catch {
                result = .failure(error)
            }
            once.resume(with: result, after: tasks.cancel)
        }
        // One may have ended, or the caller been cancelled, before both were known here.
        if tasks.set(operationTask, watcherTask) { tasks.cancel() }
    }
}

/// `abandoning`'s watcher returned: the operation was left behind.
public struct Abandoned: Error, CustomStringConvertible {
    public var description: String { "left unfinished" }
}

/// The two tasks of an `abandoning`, cancelled together, also when asked before they are known.
private final class TaskPair: Sendable {
    private let state = Mutex<(tasks: [Task<Void, Never>], cancelled: Bool)>(([], false))

    /// Keeps the tasks; true when they should be cancelled at once (cancel came first).
    func set(_ first: Task<Void, Never>, _ second: Task<Void, Never>) -> Bool {
        state.withLock { state in
            state.tasks = [first, second]
            return state.cancelled
        }
    }

    func cancel() {
        let tasks = state.withLock { state in
            state.cancelled = true
            return state.tasks
        }
        for task in tasks { task.cancel() }
    }
}

/// `abandoning`'s operation did not end in time.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let limit: Duration
    public var description: String { "no answer within \(limit)" }
}

/// Resumes a continuation the first time only.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>

    init(_ continuation: CheckedContinuation<T, any Error>) {
        self.continuation = Mutex(continuation)
    }

    /// Resumes it with `result` unless that was done before; only then runs `first`, before the
    /// waiting caller can go on.
    func resume(with result: Result<T, any Error>, after first: () -> Void) {
        guard let continuation = continuation.withLock({ $0.take() }) else { return }
        first()
        continuation.resume(with: result)
    }
}
