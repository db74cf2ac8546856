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
    try await Task { try await operation() }.value
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
/// connection whose server went away. The operation runs in a task of its own and is cancelled at
/// the deadline; the caller makes it end for good (closes its connection).
public func abandoning<T: Sendable>(
    after limit: Duration, clock: any Clock<Duration> = ContinuousClock(), _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let once = ResumeOnce(continuation)
        let work = Task {
            do {
                once.resume(with: .success(try await operation()))
            } catch {
                once.resume(with: .failure(error))
            }
        }
        Task {
            try? await clock.sleep(for: limit)
            if once.resume(with: .failure(DeadlineExceeded(limit: limit))) { work.cancel() }
        }
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

    /// True when this call resumed it.
    @discardableResult func resume(with result: Result<T, any Error>) -> Bool {
        guard let continuation = continuation.withLock({ $0.take() }) else { return false }
        continuation.resume(with: result)
        return true
    }
}
