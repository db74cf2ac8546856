import AssistantStore
import Conversation
import Foundation
import Logging
import OpenAIClient
import Support
import TelegramAssistant
import TelegramBotAPI
import TelegramFrontEnd
import TestSupport

/// `telegram-assistant-bench soak --minutes N [--chats 50] [--seed S]`: the whole bot against both
/// fakes under Telegram's real flood limits, with random faults from the README's fault matrix,
/// for N minutes. Every chat writes, waits for its answer, and writes again; after each wave the
/// run checks that every message got exactly one complete answer or one clearly marked failure.
/// At the end it prints the counts and exits non-zero when an invariant broke.
///
/// With `--bot PATH` the bot is that binary in its own process (with `MALLOC_ARENA_MAX=2`, as the
/// systemd unit sets), so the RSS figures are the bot's alone, not the fakes' threads as well.
enum Soak {
    struct Tally {
        var messages = 0
        var answers = 0
        var markedFailures = 0
        var lost = 0
        var duplicates = 0
        var ambiguousDuplicates = 0
        var unexpected: [String] = []
        var faults: [String: Int] = [:]
    }

    static let failureTexts: Set<String> = [
        "Rate limit reached. Please wait a moment and try again.",
        "The AI provider's quota is used up. Please tell the bot's operator.",
        "The AI provider had a problem answering. Please try again in a moment.",
        "Could not reach the AI provider. Please try again in a moment.",
        "The AI provider took too long to answer. Please try again.",
        "The AI provider rejected the request. Please try again or tell the bot's operator.",
    ]

    static func run(arguments: [String]) async throws -> Int32 {
        func option(_ name: String) -> String? {
            arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
        }
        let minutes = Double(option("--minutes") ?? "5") ?? 5
        let chatCount = Int(option("--chats") ?? "50") ?? 50
        var random = SplitMix(seed: UInt64(option("--seed") ?? "7") ?? 7)

        let llm = try FakeOpenAIServer()
        let telegram = try FakeTelegramServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("soak-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logPath = directory + "/soak.log"
        let values = [
            "OPENAI_API_KEY": llm.settings.apiKey, "OPENAI_BASE_URL": llm.baseURL.absoluteString, "OPENAI_MODEL": "soak",
            "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.baseURL.absoluteString,
            "TELEGRAM_POLL_TIMEOUT": "10", "DATABASE_PATH": directory + "/soak.sqlite", "USER_RATE_LIMIT_PER_MINUTE": "1000",
            "OPENAI_FIRST_BYTE_TIMEOUT": "3", "OPENAI_IDLE_TIMEOUT": "2", "OPENAI_TOTAL_TIMEOUT": "30",
        ]
        let config = try AssistantConfig.parse(requireTelegram: true, environment: values)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let observer = try SQLiteStore(path: config.databasePath)
        let stop: () async -> Void
        let residentKilobytes: () -> Int
        if let path = option("--bot") {
            let bot = try ChildProcess(
                path, ["run"],
                environment: values.merging(["LOG_FILE": logPath, "LOG_LEVEL": "info", "MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin"]) { $1 })
            let pid = bot.pid
            stop = {
                bot.send(SIGTERM)
                bot.waitForEnd()
            }
            residentKilobytes = { Proc.status(pid, "VmRSS") }
        } else {
            let logger = Assistant.makeLogger(label: "soak", level: .info, sink: try LogSink(appendingTo: logPath))
            let assistant = try Assistant(config: config, logger: logger)
            let bot = try await assistant.connectBot()
            let running = Task { try await bot.serviceGroup(logger: logger).run() }
            stop = {
                running.cancel()
                _ = await running.result
            }
            residentKilobytes = { Proc.status(getpid(), "VmRSS") }
        }

        let groups = max(1, chatCount / 10)
        let chats: [(id: Int64, group: Bool)] = (0..<chatCount).map { index in
            index < groups ? (Int64(-1_000_000 - index), true) : (Int64(500_000 + index), false)
        }
        var tally = Tally()
        var rssAfterWarmUp = 0
        var rssPeak = 0
        let deadline = ContinuousClock.now + .seconds(minutes * 60)
        var wave = 0
        let started = ContinuousClock.now
        while ContinuousClock.now < deadline {
            wave += 1
            injectFaults(llm: llm, telegram: telegram, chats: chats, random: &random, tally: &tally)
            var before: [Int64: Set<Int>] = [:]
            for chat in chats { before[chat.id] = Set(telegram.visibleMessages(chatID: chat.id).map(\.messageID)) }
            for (index, chat) in chats.enumerated() {
                let text = "q\(wave)-\(index)"
                if chat.group {
                    telegram.deliverText("@test_assistant_bot \(text)", chatID: chat.id, chatType: "supergroup", userID: Int64(index + 1), messageID: wave)
                } else {
                    telegram.deliverText(text, chatID: chat.id, messageID: wave)
                }
            }
            tally.messages += chats.count
            // The wave ends when Telegram has handed out every update and the bot has closed each.
            let waveDeadline = ContinuousClock.now + .seconds(180)
            while ContinuousClock.now < waveDeadline {
                try await Task.sleep(for: .milliseconds(100))
                if telegram.pendingUpdateCount == 0, (try? await observer.openUpdates().isEmpty) == true { break }
            }
            for (index, chat) in chats.enumerated() {
                let new = telegram.visibleMessages(chatID: chat.id).filter { !(before[chat.id] ?? []).contains($0.messageID) }
                check(new.map(\.text), expected: "Echo: q\(wave)-\(index)", tally: &tally, chat: chat.id, wave: wave)
            }
            telegram.forgetHistory()
            llm.forgetRequests()
            let rss = residentKilobytes()
            rssPeak = max(rssPeak, rss)
            if wave == 3 { rssAfterWarmUp = rss }
            if wave % 10 == 0 {
                let elapsed = Int((ContinuousClock.now - started).components.seconds)
                FileHandle.standardError.write(Data("soak: \(elapsed) s, wave \(wave), \(tally.messages) messages, lost \(tally.lost), duplicates \(tally.duplicates), RSS \(rss / 1024) MiB\n".utf8))
            }
        }
        let rssEnd = residentKilobytes()
        await stop()
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let logCounts = countErrorTypes(log)

        var report = """
            soak: \(String(format: "%.1f", minutes)) minutes, \(chatCount) chats (\(groups) groups), \(wave) waves
            messages \(tally.messages), complete answers \(tally.answers), marked failures \(tally.markedFailures)
            lost \(tally.lost), duplicates \(tally.duplicates) (of which after an ambiguous send: \(tally.ambiguousDuplicates))
            RSS after warm-up \(rssAfterWarmUp / 1024) MiB, peak \(rssPeak / 1024) MiB, end \(rssEnd / 1024) MiB

            """
        report += "faults injected:\n" + tally.faults.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)" }.joined(separator: "\n") + "\n"
        report += "error types logged:\n" + logCounts.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)" }.joined(separator: "\n") + "\n"
        for line in tally.unexpected.prefix(20) { report += "unexpected: \(line)\n" }
        let rssGrowth = rssAfterWarmUp > 0 ? Double(rssEnd - rssAfterWarmUp) / Double(rssAfterWarmUp) : 0
        let hangUps = tally.faults["telegram hang-up after sendMessage"] ?? 0
        var failures: [String] = []
        if tally.lost > 0 { failures.append("\(tally.lost) messages lost") }
        if tally.duplicates - tally.ambiguousDuplicates > 0 { failures.append("\(tally.duplicates - tally.ambiguousDuplicates) duplicates") }
        if tally.ambiguousDuplicates > hangUps { failures.append("more duplicates (\(tally.ambiguousDuplicates)) than ambiguous sends (\(hangUps))") }
        if !tally.unexpected.isEmpty { failures.append("\(tally.unexpected.count) unexpected texts") }
        if rssGrowth > 0.10 { failures.append(String(format: "RSS grew %.0f%% after warm-up", rssGrowth * 100)) }
        // No line per hang-up: on a kept-alive connection libcurl sends the request again itself
        // (it cannot tell a cut after the request from an idle connection the server closed), so
        // the bot logs `ambiguous_delivery` only for the cuts that reach it. Duplicates stay bounded
        // by the hang-ups (above).
        report += "hang-ups injected \(hangUps), ambiguous_delivery lines \(logCounts["ambiguous_delivery"] ?? 0)\n"
        report += failures.isEmpty ? "PASS\n" : "FAIL: " + failures.joined(separator: "; ") + "\n"
        FileHandle.standardOutput.write(Data(report.utf8))
        return failures.isEmpty ? 0 : 1
    }

    /// One wave's faults: each with some probability, drawn from the fault matrix.
    static func injectFaults(
        llm: FakeOpenAIServer, telegram: FakeTelegramServer, chats: [(id: Int64, group: Bool)], random: inout SplitMix, tally: inout Tally
    ) {
        func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &random) < p }
        func count(_ fault: String) { tally.faults[fault, default: 0] += 1 }
        // The model: a few requests of the wave meet a fault (each is retried, falls back or fails).
        let modelFaults: [(String, FakeOpenAIServer.Behavior)] = [
            ("model 429 rate limit", .rateLimited(retryAfterSeconds: 1)),
            ("model 500", .serverError(status: 500)),
            ("model 503", .serverError(status: 503)),
            ("model dropped stream", .droppedStream(after: "Partial words ")),
            ("model empty stream", .emptyStream),
            ("model garbage line", .garbageLine(after: "Some text ")),
            ("model error event", .inStreamError(after: "Text ", message: "overloaded")),
            ("model stalls", .stall(after: "Thinking ")),
            ("model slow stream", .answer(String(repeating: "A long streamed **answer** word. ", count: 40), chunkSize: 60, pause: .milliseconds(40))),
            ("model quota", .quotaExceeded),
        ]
        for _ in 0..<Int.random(in: 0...4, using: &random) {
            let (name, behavior) = modelFaults.randomElement(using: &random)!
            llm.enqueue(behavior)
            count(name)
        }
        // Telegram: 429s with small and large retry_after on each kind of send, 5xx, a hang-up after
        // the message was applied, and now and then a short outage of getUpdates.
        if chance(0.3) {
            let method = ["sendMessage", "editMessageText", "sendMessageDraft"].randomElement(using: &random)!
            let seconds = chance(0.3) ? Int.random(in: 15...30, using: &random) : Int.random(in: 1...5, using: &random)
            telegram.failNext(method, status: 429, description: "Too Many Requests: retry after \(seconds)")
            count("telegram 429 on \(method)\(seconds >= 15 ? " (15–30 s)" : " (1–5 s)")")
        }
        if chance(0.2) {
            telegram.failNext("sendMessage", status: 502, description: "Bad Gateway")
            count("telegram 502 on sendMessage")
        }
        if chance(0.1) {
            telegram.hangUpAfterApplying("sendMessage")
            count("telegram hang-up after sendMessage")
        }
        if chance(0.1) {
            telegram.failNext("getUpdates", status: 502, description: "Bad Gateway")
            count("telegram 502 on getUpdates")
        }
    }

    static func check(_ texts: [String], expected echo: String, tally: inout Tally, chat: Int64, wave: Int) {
        func acceptable(_ text: String) -> Bool {
            text == echo || text.hasPrefix("A long streamed answer word.") || text.contains("(interrupted)") || failureTexts.contains(text)
        }
        switch texts.count {
        case 0:
            tally.lost += 1
            tally.unexpected.append("wave \(wave) chat \(chat): no answer")
        case 1:
            if failureTexts.contains(texts[0]) { tally.markedFailures += 1 } else { tally.answers += 1 }
            if !acceptable(texts[0]) { tally.unexpected.append("wave \(wave) chat \(chat): \(texts[0].prefix(80))") }
        default:
            tally.duplicates += texts.count - 1
            // The same answer twice (a send Telegram applied but never confirmed, repeated), or a
            // group's streaming message left behind by such a send, then the final text.
            let last = texts[texts.count - 1]
            if acceptable(last), texts.dropLast().allSatisfy({ last == $0 || last.hasPrefix($0) }) {
                tally.ambiguousDuplicates += texts.count - 1
                tally.answers += 1
            } else {
                tally.unexpected.append("wave \(wave) chat \(chat): \(texts.map { String($0.prefix(40)) })")
            }
        }
    }

    static func countErrorTypes(_ log: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in log.split(separator: "\n") {
            guard let range = line.range(of: "\"error_type\":\"") else { continue }
            let rest = line[range.upperBound...]
            let type = rest.prefix { $0 != "\"" }
            counts[String(type), default: 0] += 1
        }
        return counts
    }
}
