/// Where the bot's tasks run: `prefer` sets a task executor preference (SE-0417) that child tasks
/// inherit, and keeps it where unstructured tasks (`shielded`, `abandoning`) can take it along, as
/// they do not inherit it by themselves.
public enum TaskExecutors {
    /// The executor preferred by the tasks `prefer` runs; nil outside them.
    @TaskLocal public static var preferred: (any TaskExecutor)?

    /// Runs `operation`, and every task it starts, on `executor` (default actors included), except
    /// where something else decides: actors with their own executor, work on GRDB's queues.
    /// Keeps the caller's isolation (`main` on the main actor), so nothing runs elsewhere first.
    public static func prefer<T>(
        _ executor: any TaskExecutor, isolation: isolated (any Actor)? = #isolation, _ operation: () async throws -> T
    ) async rethrows -> T {
        try await withTaskExecutorPreference(executor, isolation: isolation) {
            try await $preferred.withValue(executor, operation: operation, isolation: isolation)
        }
    }
}
