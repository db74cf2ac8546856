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
            default: break
            }
            index += 2
        }
        return try await measure(options)
    }

    static func measure(_ options: Options) async throws -> [Benchmarks.Row] {
        let telegram = try FakeTelegramServer()
        let llm = try FakeOpenAIServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-process-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let bot = Process()
        bot.executableURL = URL(fileURLWithPath: options.bot)
        bot.arguments = ["run"]
        bot.environment = [
            "PATH": "/usr/bin:/bin", "HOME": directory.path,
            "OPENAI_API_KEY": llm.settings.apiKey, "OPENAI_BASE_URL": llm.baseURL.absoluteString, "OPENAI_MODEL": "bench",
            "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.baseURL.absoluteString,
            "DATABASE_PATH": directory.appendingPathComponent("bench.sqlite").path, "LOG_LEVEL": "warning",
            "MAX_CONCURRENT_REPLIES": "256", "USER_RATE_LIMIT_PER_MINUTE": "1000",
        ]
        bot.standardOutput = FileHandle.nullDevice
        bot.standardError = FileHandle(forWritingAtPath: "/dev/null")
        let started = ContinuousClock.now
        try bot.run()
        defer {
            bot.terminate()
            bot.waitUntilExit()
        }
        let pid = bot.processIdentifier
        var rows: [Benchmarks.Row] = []
        func row(_ name: String, _ value: Double, _ unit: String, _ note: String = "") {
            rows.append(.init(name: name, value: value, unit: unit, note: note))
        }

        try await waitFor("the first poll", timeout: .seconds(60)) { telegram.firstPollArrival != nil }
        let firstPoll = telegram.firstPollArrival!
        row("start-up to first getUpdates", Benchmarks.milliseconds(firstPoll - started), "ms", "spawn → the fake sees the first poll")

        try await Task.sleep(for: .seconds(1))
        row("idle RSS", Double(Proc.status(pid, "VmRSS")) / 1024, "MiB", "1 s after the first poll")
        let idleStart = Proc.usage(pid)
        try await Task.sleep(for: .seconds(options.idleSeconds))
        let idle = Proc.usage(pid) - idleStart
        row("idle CPU over \(options.idleSeconds) s", idle.cpu * 1000, "ms", "\(idle.syscalls) read/write syscalls")

        var chat: Int64 = 1
        func reply() async throws -> (toModel: Duration, toDraft: Duration?) {
            chat += 1
            let requestsBefore = llm.requests.count
            llm.enqueue(.paced(answer, charactersPerEvent: 4, every: .milliseconds(10)))
            let delivered = ContinuousClock.now
            telegram.deliverText("question", chatID: chat)
            let id = chat
            try await waitFor("the complete answer", timeout: .seconds(60)) { telegram.visibleMessages(chatID: id).last?.text == answer }
            let request = llm.requests[requestsBefore].receivedAt
            let shown = telegram.calls.first {
                ($0.method == "sendMessageDraft" || $0.method == "sendMessage") && $0.status == 200 && $0.at > request
                    && $0.parameters["chat_id"]?.int64 == id
            }
            return (request - delivered, shown.map { $0.at - request })
        }

        let firstStart = Proc.usage(pid)
        _ = try await reply()
        let first = Proc.usage(pid) - firstStart
        row("first reply after start: CPU", first.cpu * 1000, "ms", "\(first.syscalls) read/write syscalls")
        row("peak RSS after the first reply", Double(Proc.status(pid, "VmHWM")) / 1024, "MiB")

        var toModel: [Double] = []
        var toDraft: [Double] = []
        let sequentialStart = Proc.usage(pid)
        for _ in 0..<options.sequential {
            let (model, draft) = try await reply()
            toModel.append(Benchmarks.milliseconds(model))
            if let draft { toDraft.append(Benchmarks.milliseconds(draft)) }
        }
        let sequential = Proc.usage(pid) - sequentialStart
        let count = Double(options.sequential)
        row("sequential: CPU per reply", sequential.cpu * 1000 / count, "ms", "\(options.sequential) chats one after another")
        row("sequential: syscalls per reply", Double(sequential.syscalls) / count, "calls", "read/write syscalls (/proc/PID/io)")
        row("sequential: update → request at the model p50", percentile(toModel, 0.5), "ms")
        row("sequential: model's first event → first visible draft p50", percentile(toDraft, 0.5), "ms", "the fake sends the first event as the request arrives")
        row("sequential: model's first event → first visible draft p95", percentile(toDraft, 0.95), "ms")
        row("peak RSS after the sequential replies", Double(Proc.status(pid, "VmHWM")) / 1024, "MiB")

        let burstStart = Proc.usage(pid)
        let wallStart = ContinuousClock.now
        let chats = (0..<options.burst).map { Int64(100_000 + $0) }
        for _ in chats { llm.enqueue(.paced(answer, charactersPerEvent: 4, every: .milliseconds(10))) }
        for id in chats { telegram.deliverText("question", chatID: id) }
        try await waitFor("every answer of the burst", timeout: .seconds(600)) { chats.allSatisfy { telegram.visibleMessages(chatID: $0).last?.text == answer } }
        let burst = Proc.usage(pid) - burstStart
        row("\(options.burst) at once: all answered", Benchmarks.milliseconds(ContinuousClock.now - wallStart) / 1000, "s")
        row("\(options.burst) at once: CPU per reply", burst.cpu * 1000 / Double(options.burst), "ms")
        row("\(options.burst) at once: syscalls per reply", Double(burst.syscalls) / Double(options.burst), "calls")
        row("\(options.burst) at once: peak RSS", Double(Proc.status(pid, "VmHWM")) / 1024, "MiB")
        row("\(options.burst) at once: 429s", Double(telegram.tooManyRequests), "", "must be 0")
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
        static func - (a: Usage, b: Usage) -> Usage { Usage(cpu: a.cpu - b.cpu, syscalls: a.syscalls - b.syscalls) }
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
        return Usage(cpu: ticks / Double(sysconf(Int32(_SC_CLK_TCK))), syscalls: syscalls)
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
