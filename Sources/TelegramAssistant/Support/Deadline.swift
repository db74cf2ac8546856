/// Thrown by `withDeadline` when the time ran out.
struct DeadlineExceeded: Error {}

/// Runs `operation`, cancelling it and throwing `DeadlineExceeded` if it takes longer than `limit`.
///
/// A guard against calls that never end: libcurl's own timeout is an idle timeout, and a transfer
/// lost inside the HTTP stack would otherwise hang its caller (and with it a whole chat) forever.
func withDeadline<T: Sendable>(
    _ limit: Duration, clock: any Clock<Duration> = ContinuousClock(), _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await clock.sleep(for: limit)
            throw DeadlineExceeded()
        }
        defer { group.cancelAll() }
        while let result = try await group.next() {
            if let result { return result }
        }
        throw CancellationError()
    }
}

/// Runs `operation` to its end even when the calling task is cancelled: for one request that a
/// user must see whole or not at all. Cancelling a send half-way could leave Telegram with the
/// message while we think it failed, and the retry would show it twice. No deadline of ours cuts it
/// either; the HTTP client's own timeout bounds it, and a send that times out is an ambiguous
/// failure, reported as such.
func shielded<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    // An unstructured task does not inherit cancellation; it is awaited here, never left behind.
    try await Task { try await operation() }.value
}

/// Runs `operation`, letting it outlive the caller's cancellation by `delay`: when the caller is
/// cancelled, the operation is cancelled `delay` later if it is still running. For the final text
/// of a reply that shutdown cut off: it still goes out when Telegram's budget allows it within
/// moments, while a long `retry_after` is left to the next start instead of holding up the exit.
func withCancellationDelay<T: Sendable>(
    _ delay: Duration, clock: any Clock<Duration>, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let callerCancelled = ChangeSignal()
    return try await withTaskCancellationHandler {
        try await shielded {
            try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await operation() }
                group.addTask {
                    await callerCancelled.wait()
                    guard !Task.isCancelled else { return nil }  // the operation ended first
                    try await clock.sleep(for: delay)
                    throw CancellationError()
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result { return result }
                }
                throw CancellationError()
            }
        }
    } onCancel: {
        callerCancelled.notify()
    }
}
