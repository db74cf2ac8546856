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
