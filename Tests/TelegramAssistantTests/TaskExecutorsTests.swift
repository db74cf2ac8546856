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

/// `WorkerThread`: a thread of its own, as a task executor, for work that may block it.
@Suite(.timeLimit(.minutes(1))) struct WorkerThreadTests {
    static func threadName() -> String {
        ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
    }

    @Test func aTaskThatPrefersItRunsOnItsThreadAroundSuspensionsAndInChildren() async throws {
        let worker = WorkerThread(name: "test-worker")
        let names = await withTaskExecutorPreference(worker) {
            var names = [Self.threadName()]
            // Resumed from another thread: the task comes back to the worker's.
            await withCheckedContinuation { continuation in DispatchQueue.global().async { continuation.resume() } }
            names.append(Self.threadName())
            let child = await withTaskGroup(of: String.self) { group in
                group.addTask { Self.threadName() }
                return await group.next() ?? ""
            }
            names.append(child)
            return names
        }
        #expect(names == ["test-worker", "test-worker", "test-worker"])
        #expect(Self.threadName() != "test-worker")
    }

    /// Its jobs run one at a time, in order: a job that blocks holds the next one back.
    @Test func itRunsOneJobAtATime() async throws {
        final class Overlap: Sendable {
            let counts = Mutex((running: 0, most: 0))
        }
        let worker = WorkerThread(name: "test-worker")
        let overlap = Overlap()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask(executorPreference: worker) {
                    overlap.counts.withLock { $0.running += 1; $0.most = max($0.most, $0.running) }
                    usleep(20_000)  // blocks the thread, as a long statement would
                    overlap.counts.withLock { $0.running -= 1 }
                }
            }
        }
        #expect(overlap.counts.withLock { $0.most } == 1)
    }
}
