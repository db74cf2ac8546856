import Foundation
import Synchronization
import Testing

@testable import Support

/// `TaskExecutors.prefer`: the unstructured tasks of `shielded` and `abandoning` keep the executor
/// the caller prefers (an unstructured task does not inherit it by itself).
@Suite(.timeLimit(.minutes(1))) struct TaskExecutorsTests {
    /// Runs jobs on Dispatch's pool, counting them.
    final class CountingExecutor: TaskExecutor {
        let jobs = Atomic<Int>(0)

        func enqueue(_ job: consuming ExecutorJob) {
            jobs.add(1, ordering: .relaxed)
            let job = UnownedJob(job)
            let executor = asUnownedTaskExecutor()
            DispatchQueue.global().async { job.runSynchronously(on: executor) }
        }
    }

    /// The executor the running task prefers.
    static func preferred() -> UnownedTaskExecutor? {
        withUnsafeCurrentTask { $0?.unownedTaskExecutor }
    }

    @Test func shieldedAndAbandoningRunOnThePreferredExecutor() async throws {
        let executor = CountingExecutor()
        let (inShielded, inAbandoning, jobsBefore) = try await TaskExecutors.prefer(executor) {
            let jobsBefore = executor.jobs.load(ordering: .relaxed)
            let inShielded = try await shielded { Self.preferred() }
            let inAbandoning = try await abandoning(after: .seconds(30)) { Self.preferred() }
            return (inShielded, inAbandoning, jobsBefore)
        }
        #expect(inShielded == executor.asUnownedTaskExecutor())
        #expect(inAbandoning == executor.asUnownedTaskExecutor())
        // The two tasks ran there: each was enqueued on it at least once.
        #expect(executor.jobs.load(ordering: .relaxed) >= jobsBefore + 2)
        // Outside `prefer`, they run where they always did.
        #expect(try await shielded { Self.preferred() } == nil)
    }
}
