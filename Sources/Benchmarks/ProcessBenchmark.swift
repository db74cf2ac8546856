import Foundation
import TestSupport

/// `telegram-assistant-bench process --bot PATH`: the real binary as its own process against the fake
/// servers in this one, measured from `/proc` for the bot alone. What a single user on a small
/// server feels: start-up, idle cost, the first reply, replies one after another, then a burst.
///
/// The model streams 800 characters, 4 per event, one event every 10 ms; Telegram's real flood
/// limits are on. Pass `--bot` a build of another commit to compare builds in one session.
enum ProcessBenchmark {
    struct Options {
        var bot = ".build/release/telegram-assistant"
        var sequential = 50
        var burst = 200
        var idleSeconds = 60
        /// PostgreSQL instead of SQLite (a Cluster build of the bot): each run gets a schema of its own.
        var databaseURL: String?
        /// Bots on that one database: one leads, the rest stand by (their CPU counts too).
        var replicas = 1
    }

    static let answer: String = {
        let sentence = "Streaming answers arrive piece by piece, and the bot shows them as they come. "
        return String(String(repeating: sentence, count: 11).prefix(800)).trimmingCharacters(in: .whitespaces)
    }()

    static func run(arguments: [String]) async throws -> [Benchmarks.Row] {
        var options = Options()
        var index = 2
        while index + 1 < arguments.count {
            let value = arguments[index + 1]
            switch arguments[index] {
            case "--bot": options.bot = value
            case "--sequential": options.sequential = Int(value) ?? options.sequential
            case "--burst": options.burst = Int(value) ?? options.burst
            case "--idle-seconds": options.idleSeconds = Int(value) ?? options.idleSeconds
            case "--database-url": options.databaseURL = value
            case "--replicas": options.replicas = max(1, Int(value) ?? 1)
            default: break
            }
            index += 2
        }
        return try await measure(options)
    }

    /// "thread 12.3, …" for the busiest threads, per reply.
    static func perThread(_ usage: Proc.Usage, _ replies: Double) -> String {
        usage.switches.filter { $0.value > 0 }.sorted { $0.value > $1.value }.prefix(4)
            .map { "\($0.key) \(String(format: "%.1f", Double($0.value) / replies))" }.joined(separator: ", ")
    }

    static func measure(_ options: Options) async throws -> [Benchmarks.Row] {
        let telegram = try FakeTelegramServer()
        let llm = try FakeOpenAIServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-process-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        var environment = [
            "PATH": "/usr/bin:/bin", "HOME": directory.path,
            "OPENAI_API_KEY": llm.settings.apiKey, "OPENAI_BASE_URL": llm.baseURL.absoluteString, "OPENAI_MODEL": "bench",
            "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.baseURL.absoluteString,
            "DATABASE_PATH": directory.appendingPathComponent("bench.sqlite").path, "LOG_LEVEL": "warning",
            "MAX_CONCURRENT_REPLIES": "256", "USER_RATE_LIMIT_PER_MINUTE": "1000",
        ]
        let database = options.databaseURL.map { url in
            let schema = "bench_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
            return PostgresCounter(url: url + (url.contains("?") ? "&" : "?") + "schema=\(schema)")
        }
        if let database {
            environment["DATABASE_PATH"] = nil
            environment["DATABASE_URL"] = database.url
        }
        let bots = try (0..<options.replicas).map { index in
            var environment = environment
            // BENCH_LOG_DIR keeps each bot's log (info level) there, to see what it did.
            if let logs = ProcessInfo.processInfo.environment["BENCH_LOG_DIR"] {
                environment["LOG_FILE"] = "\(logs)/bot-\(index).log"
                environment["LOG_LEVEL"] = "info"
            }
            return try ChildProcess(options.bot, ["run"], environment: environment)
        }
        let started = ContinuousClock.now
        defer {
            for bot in bots {
                bot.send(SIGTERM)
                bot.waitForEnd()
            }
        }
        let pids = bots.map(\.pid)
        var rows: [Benchmarks.Row] = []
        func row(_ name: String, _ value: Double, _ unit: String, _ note: String = "") {
            rows.append(.init(name: name, value: value, unit: unit, note: note))
        }

        try await waitFor("the first poll", timeout: .seconds(60)) { telegram.firstPollArrival != nil }
        let firstPoll = telegram.firstPollArrival!
        row("start-up to first getUpdates", Benchmarks.milliseconds(firstPoll - started), "ms", "spawn → the fake sees the first poll")

        try await Task.sleep(for: .seconds(1))
        row("idle RSS", Double(Proc.status(pids[0], "VmRSS")) / 1024, "MiB", "1 s after the first poll")
        let idleStart = Proc.usage(pids)
        try await Task.sleep(for: .seconds(options.idleSeconds))
        let idle = Proc.usage(pids) - idleStart
        row("idle CPU over \(options.idleSeconds) s", idle.cpu * 1000, "ms", "\(idle.syscalls) read/write syscalls")
        row("idle CPU over \(options.idleSeconds) s (schedstat)", idle.threadCPU * 1000, "ms", "wake-ups: \(perThread(idle, 1))")

        var chat: Int64 = 1
        /// One question and its whole answer, in a new chat or, with `in`, in that chat.
        func reply(in existing: Int64? = nil) async throws -> (toModel: Duration, toDraft: Duration?) {
            let id: Int64
            if let existing {
                id = existing
            } else {
                chat += 1
                id = chat
            }
            let requestsBefore = llm.requests.count
            let answered = telegram.visibleMessages(chatID: id).count
            llm.enqueue(.paced(answer, charactersPerEvent: 4, every: .milliseconds(10)))
            let delivered = ContinuousClock.now
            telegram.deliverText("question", chatID: id)
            try await waitFor("the complete answer", timeout: .seconds(60)) {
                let shown = telegram.visibleMessages(chatID: id)
                return shown.count > answered && shown.last?.text == answer
            }
            let request = llm.requests[requestsBefore].receivedAt
            let shown = telegram.calls.first {
                ($0.method == "sendMessageDraft" || $0.method == "sendMessage") && $0.status == 200 && $0.at > request
                    && $0.parameters["chat_id"]?.int64 == id
            }
            return (request - delivered, shown.map { $0.at - request })
        }

        let firstStart = Proc.usage(pids)
        _ = try await reply()
        let first = Proc.usage(pids) - firstStart
        row("first reply after start: CPU", first.cpu * 1000, "ms", "\(first.syscalls) read/write syscalls")
        row("peak RSS after the first reply", Double(Proc.status(pids[0], "VmHWM")) / 1024, "MiB")

        var toModel: [Double] = []
        var toDraft: [Double] = []
        let transactionsBefore = database.map { $0.transactions() }
        let sequentialStart = Proc.usage(pids)
        for _ in 0..<options.sequential {
            let (model, draft) = try await reply()
            toModel.append(Benchmarks.milliseconds(model))
            if let draft { toDraft.append(Benchmarks.milliseconds(draft)) }
        }
        let sequential = Proc.usage(pids) - sequentialStart
        let sequentialTransactions = database.map { $0.transactions() }
        let count = Double(options.sequential)
        row("sequential: CPU per reply", sequential.cpu * 1000 / count, "ms", "\(options.sequential) chats one after another")
        row("sequential: CPU per reply (schedstat)", sequential.threadCPU * 1000 / count, "ms", "threads' own nanosecond account")
        row("sequential: syscalls per reply", Double(sequential.syscalls) / count, "calls", "read/write syscalls (/proc/PID/io)")
        row("sequential: context switches per reply", Double(sequential.totalSwitches) / count, "", perThread(sequential, count))
        if let before = transactionsBefore, let after = sequentialTransactions {
            row("sequential: database transactions per reply", Double(after - before) / count, "", "pg_stat_database, every replica's")
        }
        row("sequential: update → request at the model p50", percentile(toModel, 0.5), "ms")
        row("sequential: model's first event → first visible draft p50", percentile(toDraft, 0.5), "ms", "the fake sends the first event as the request arrives")
        row("sequential: model's first event → first visible draft p95", percentile(toDraft, 0.95), "ms")
        row("peak RSS after the sequential replies", Double(Proc.status(pids[0], "VmHWM")) / 1024, "MiB")

        // A single user: one chat whose history grows with every reply, up to the model's window.
        let oneChat: Int64 = 1
        let oneChatStart = Proc.usage(pids)
        for _ in 0..<options.sequential { _ = try await reply(in: oneChat) }
        let inOneChat = Proc.usage(pids) - oneChatStart
        row("one chat: CPU per reply (schedstat)", inOneChat.threadCPU * 1000 / count, "ms", "\(options.sequential) replies in one chat, its history growing")
        row("one chat: context switches per reply", Double(inOneChat.totalSwitches) / count, "", perThread(inOneChat, count))

        let burstStart = Proc.usage(pids)
        let wallStart = ContinuousClock.now
        let chats = (0..<options.burst).map { Int64(100_000 + $0) }
        for _ in chats { llm.enqueue(.paced(answer, charactersPerEvent: 4, every: .milliseconds(10))) }
        let burstTransactions = database.map { $0.transactions() }
        for id in chats { telegram.deliverText("question", chatID: id) }
        try await waitFor("every answer of the burst", timeout: .seconds(600)) { chats.allSatisfy { telegram.visibleMessages(chatID: $0).last?.text == answer } }
        let burst = Proc.usage(pids) - burstStart
        row("\(options.burst) at once: all answered", Benchmarks.milliseconds(ContinuousClock.now - wallStart) / 1000, "s")
        row("\(options.burst) at once: CPU per reply", burst.cpu * 1000 / Double(options.burst), "ms")
        row("\(options.burst) at once: CPU per reply (schedstat)", burst.threadCPU * 1000 / Double(options.burst), "ms", "threads' own nanosecond account")
        row("\(options.burst) at once: syscalls per reply", Double(burst.syscalls) / Double(options.burst), "calls")
        row("\(options.burst) at once: context switches per reply", Double(burst.totalSwitches) / Double(options.burst), "", perThread(burst, Double(options.burst)))
        row("\(options.burst) at once: peak RSS", Double(Proc.status(pids[0], "VmHWM")) / 1024, "MiB")
        row("\(options.burst) at once: 429s", Double(telegram.tooManyRequests), "", "must be 0")
        if let database, let before = burstTransactions {
            row("\(options.burst) at once: database transactions per reply", Double(database.transactions() - before) / Double(options.burst), "")
        }
        return rows
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }
}

/// Another process's counters, from `/proc`.
enum Proc {
    struct Usage {
        var cpu: Double
        var syscalls: Int
        /// Each thread's context switches (voluntary and not) and CPU time in nanoseconds from the
        /// scheduler's account (`/proc/PID/task/TID/schedstat`, finer than `cpu`'s 10 ms ticks),
        /// by "PID/TID".
        var threads: [String: (name: String, switches: Int, nanoseconds: Int)] = [:]
        /// Context switches by thread name.
        var switches: [String: Int] { threads.values.reduce(into: [:]) { $0[$1.name, default: 0] += $1.switches } }
        var totalSwitches: Int { threads.values.reduce(0) { $0 + $1.switches } }
        /// CPU time in seconds, from the threads' own account.
        var threadCPU: Double { Double(threads.values.reduce(0) { $0 + $1.nanoseconds }) / 1e9 }
        /// What happened between `b` and `a`: a thread that ended meanwhile takes its counts with
        /// it (the figures are floors then); one that began counts from zero.
        static func - (a: Usage, b: Usage) -> Usage {
            Usage(
                cpu: a.cpu - b.cpu, syscalls: a.syscalls - b.syscalls,
                threads: a.threads.reduce(into: [:]) { result, entry in
                    let then = b.threads[entry.key]
                    result[entry.key] = (
                        entry.value.name, entry.value.switches - (then?.switches ?? 0), entry.value.nanoseconds - (then?.nanoseconds ?? 0)
                    )
                })
        }
    }

    /// Several processes' together.
    static func usage(_ pids: [Int32]) -> Usage {
        pids.map(usage).reduce(Usage(cpu: 0, syscalls: 0)) {
            Usage(cpu: $0.cpu + $1.cpu, syscalls: $0.syscalls + $1.syscalls, threads: $0.threads.merging($1.threads) { first, _ in first })
        }
    }

    /// Context switches and CPU time of each thread of `pid`, by "PID/TID".
    static func threads(_ pid: Int32) -> [String: (name: String, switches: Int, nanoseconds: Int)] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var threads: [String: (name: String, switches: Int, nanoseconds: Int)] = [:]
        for task in tasks {
            let schedstat = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/schedstat", encoding: .utf8)) ?? ""
            let nanoseconds = Int(schedstat.split(separator: " ").first ?? "0") ?? 0
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8)) ?? ""
            var name = "?"
            var count = 0
            for line in text.split(separator: "\n") {
                if line.hasPrefix("Name:") { name = line.dropFirst(5).trimmingCharacters(in: .whitespaces) }
                if line.hasPrefix("voluntary_ctxt_switches:") || line.hasPrefix("nonvoluntary_ctxt_switches:") {
                    count += Int(line.split(separator: "\t").last ?? "0") ?? 0
                }
            }
            threads["\(pid)/\(task)"] = (name, count, nanoseconds)
        }
        return threads
    }

    /// User + system CPU (clock ticks of `/proc/PID/stat`) and read/write syscalls (`/proc/PID/io`).
    static func usage(_ pid: Int32) -> Usage {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields = stat[(stat.lastIndex(of: ")").map { stat.index($0, offsetBy: 2) } ?? stat.startIndex)...].split(separator: " ")
        let ticks = fields.count > 12 ? (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0) : 0
        let io = (try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)) ?? ""
        var syscalls = 0
        for line in io.split(separator: "\n") where line.hasPrefix("syscr:") || line.hasPrefix("syscw:") {
            syscalls += Int(line.split(separator: " ").last ?? "0") ?? 0
        }
        return Usage(cpu: ticks / Double(sysconf(Int32(_SC_CLK_TCK))), syscalls: syscalls, threads: threads(pid))
    }

    /// A `/proc/PID/status` value in kB.
    static func status(_ pid: Int32, _ key: String) -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}

/// The database's committed transactions, read with `psql` (PostgreSQL's statistics lag by up to a
/// second, so each reading waits that long first).
struct PostgresCounter {
    let url: String

    func transactions() -> Int {
        Thread.sleep(forTimeInterval: 1.5)
        let base = url.components(separatedBy: "schema=").first ?? url
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("psql-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let arguments = [base.hasSuffix("&") || base.hasSuffix("?") ? String(base.dropLast()) : base, "-Atc",
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"]
        guard let psql = try? ChildProcess("/usr/bin/psql", arguments, output: output) else { return 0 }
        psql.waitForEnd()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}
