import Foundation
import Testing
import TestSupport

/// The real binary, idle: nothing but its event thread wakes, and that one only for the long poll.
@Suite(.timeLimit(.minutes(2))) struct IdleTests {
    /// Context switches so far of each thread of `pid` but the event thread, by thread id.
    static func wakeUps(_ pid: Int32) -> [String: Int] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var counts: [String: Int] = [:]
        for tid in tasks {
            let base = "/proc/\(pid)/task/\(tid)"
            let name = ((try? String(contentsOfFile: base + "/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard name != "curl-event-loop", let status = try? String(contentsOfFile: base + "/status", encoding: .utf8) else { continue }
            let switches = status.split(separator: "\n").filter { $0.contains("ctxt_switches:") }
                .compactMap { Int($0.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") }.reduce(0, +)
            counts["\(name) (\(tid))"] = switches
        }
        return counts
    }

    /// After a reply, over three idle seconds, no thread but the event thread runs: nothing started
    /// libdispatch's worker pool, whose monitor wakes a process every second for as long as it
    /// lives (it did, before every task of the process preferred the event thread).
    @Test(.enabled(if: CrashRecoveryTests.binary != nil, "needs the built binary"))
    func onlyTheEventThreadWakesWhileTheBotIdles() async throws {
        let (llm, telegram) = (try FakeOpenAIServer(), try FakeTelegramServer())
        let directory = TemporaryDirectory()
        let bot = try CrashRecoveryTests.Bot(
            binary: try #require(CrashRecoveryTests.binary),
            environment: CrashRecoveryTests.environment(llm, telegram, database: directory.path + "/assistant.sqlite"))
        telegram.deliverText("hello", chatID: 7)
        try await waitUntil("the answer") { telegram.visibleMessages(chatID: 7).count == 1 }
        try await waitUntil("the update handled") { telegram.calls("getUpdates").count >= 3 }
        // A libdispatch thread that ran GRDB's queue at start (the first compaction, before the
        // answer) retires after five idle seconds, and waking to do so is no idling wake-up: start
        // after that, counted from the answer, however slowly a loaded machine got there.
        try await Task.sleep(for: .seconds(6))
        let pid = bot.process.pid
        let before = Self.wakeUps(pid)
        // The window of the measurement, not a wait for something to happen: the monitor would
        // wake its thread about three times in it.
        try await Task.sleep(for: .seconds(3))
        let after = Self.wakeUps(pid)
        let woke = after.filter { $0.value > (before[$0.key] ?? 0) }.map { "\($0.key): \($0.value - (before[$0.key] ?? 0))" }
        #expect(woke.isEmpty, "threads that woke while the bot idled: \(woke)")
        _ = try await bot.terminate()
    }
}
