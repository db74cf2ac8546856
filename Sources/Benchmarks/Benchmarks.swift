import AssistantStore
import Conversation
import CurlHTTP
import Foundation
import Logging
import OpenAIClient
import Support
import Synchronization
import TelegramAssistant
import TelegramBotAPI
import TelegramFrontEnd
import TestSupport

/// `swift run -c release telegram-assistant-bench [--json PATH]`: measures the parts of the LLM path
/// that are ours (decoding, bridging, bookkeeping) against the in-process fake server, and prints a table.
@main
struct Benchmarks {
    struct Row: Codable {
        var name: String
        var value: Double
        var unit: String
        var note: String
    }

    static func main() async throws {
        let arguments = CommandLine.arguments
        if arguments.dropFirst().first == "soak" { exit(try await Soak.run(arguments: arguments)) }
        if arguments.dropFirst().first == "fuzz" { exit(Fuzz.run(arguments: arguments)) }
        var rows: [Row] = []
        if arguments.dropFirst().first == "process" {
            rows = try await ProcessBenchmark.run(arguments: arguments)
            return try print(rows, arguments: arguments)
        }
        rows += sseDecoder()
        rows += markdown()
        rows += try await streaming()
        rows += try await cancellation()
        rows += try await durability()
        rows += try await BotBenchmark.run()
        rows.append(Row(name: "peak RSS", value: Double(peakRSSKilobytes()) / 1024, unit: "MiB", note: "whole benchmark process"))
        try print(rows, arguments: arguments)
    }

    /// The table on standard output, and JSON to the file after `--json`.
    static func print(_ rows: [Row], arguments: [String]) throws {
        var table = "| benchmark | value | unit | note |\n|---|---:|---|---|\n"
        for row in rows {
            table += "| \(row.name) | \(String(format: "%.3f", row.value)) | \(row.unit) | \(row.note) |\n"
        }
        FileHandle.standardOutput.write(Data(table.utf8))
        if let index = arguments.firstIndex(of: "--json"), index + 1 < arguments.count {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: arguments[index + 1]))
        }
    }

    /// A 30 KB answer (about 1,500 events), fed in 1 KB network reads.
    static func sseDecoder() -> [Row] {
        var sse = ""
        for index in 0..<1500 {
            sse += "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"wörd\(index % 10) \"}}]}\n\n"
        }
        let bytes = Array(sse.utf8)
        let rounds = 200
        var events = 0
        let start = cpuSeconds()
        for _ in 0..<rounds {
            var decoder = SSEDecoder()
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + 1024, bytes.count)
                events += (try? decoder.feed(bytes[offset..<end]).count) ?? 0
                offset = end
            }
        }
        let elapsed = cpuSeconds() - start
        let megabytes = Double(bytes.count * rounds) / 1_048_576
        return [
            Row(name: "SSE decode throughput", value: megabytes / elapsed, unit: "MiB/CPU-s", note: "1 KiB reads, \(bytes.count) B stream"),
            Row(name: "SSE decode per event", value: elapsed / Double(events) * 1e9, unit: "ns", note: "\(events) events"),
        ]
    }

    /// Rendering a typical 4 KB Markdown answer into text + entities and splitting it.
    static func markdown() -> [Row] {
        let paragraph = "Streaming **answers** word by word, with `code`, *emphasis* and a [link](https://example.org). "
        let answer = (0..<8).map { _ in String(repeating: paragraph, count: 5) }.joined(separator: "\n\n") + "\n```swift\nlet x = 1\n```"
        let rounds = 200
        let start = cpuSeconds()
        var entities = 0
        for _ in 0..<rounds { entities += MarkdownRenderer.render(answer).split().reduce(0) { $0 + $1.entities.count } }
        let elapsed = cpuSeconds() - start
        return [Row(name: "Markdown render + split", value: elapsed / Double(rounds) * 1000, unit: "ms", note: "\(answer.utf8.count) B answer, \(entities / rounds) entities")]
    }

    /// Whole completions through HTTP, SSE, JSON and the runner, the fake server sending as fast as it can.
    static func streaming() async throws -> [Row] {
        let server = try FakeOpenAIServer()
        let client = ChatCompletionsClient(baseURL: server.baseURL, apiKey: Secret(server.settings.apiKey), http: HTTPClient())
        let runner = CompletionRunner(
            client: client, timeouts: LLMTimeouts(firstByte: .seconds(30), idle: .seconds(30), total: .seconds(60)), clock: ContinuousClock(),
            deadlineClock: ContinuousClock())
        let answer = String(repeating: "token ", count: 500)
        let request = CompletionRequest(
            messages: [OpenAI.Message(role: .user, content: "hi")], model: "bench", fallbackModel: nil, temperature: 0, maxOutputTokens: 600)
        let count = 200
        for _ in 0..<count { server.enqueue(.answer(answer, chunkSize: 256)) }
        // Warm up the connection pool and code paths.
        server.enqueue(.answer(answer, chunkSize: 256))
        _ = try await runner.complete(request) { _ in }

        let wallStart = ContinuousClock.now
        let cpuStart = cpuSeconds()
        var ttfts: [Double] = []
        for _ in 0..<count {
            let completion = try await runner.complete(request) { _ in }
            ttfts.append(milliseconds(completion.timeToFirstToken ?? .zero))
        }
        let cpu = cpuSeconds() - cpuStart
        let wall = ContinuousClock.now - wallStart
        ttfts.sort()
        return [
            Row(name: "completions per CPU-second", value: Double(count) / cpu, unit: "completions", note: "500-token answers, client and fake server in one process"),
            Row(name: "completion wall time", value: milliseconds(wall) / Double(count), unit: "ms", note: "mean over \(count)"),
            Row(name: "time to first token p50", value: ttfts[ttfts.count / 2], unit: "ms", note: "request sent → first delta, loopback"),
        ]
    }

    /// How fast a cancelled reply lets go: cancel → the call returns.
    static func cancellation() async throws -> [Row] {
        let server = try FakeOpenAIServer()
        let client = ChatCompletionsClient(baseURL: server.baseURL, apiKey: Secret(server.settings.apiKey), http: HTTPClient())
        let runner = CompletionRunner(
            client: client, timeouts: LLMTimeouts(firstByte: .seconds(30), idle: .seconds(30), total: .seconds(60)), clock: ContinuousClock(),
            deadlineClock: ContinuousClock())
        let request = CompletionRequest(
            messages: [OpenAI.Message(role: .user, content: "hi")], model: "bench", fallbackModel: nil, temperature: 0, maxOutputTokens: 10)
        var samples: [Double] = []
        for _ in 0..<20 {
            server.enqueue(.stall(after: "some text "))
            let started = Flag()
            let task = Task { try await runner.complete(request) { _ in started.set() } }
            while !started.isSet { try await Task.sleep(for: .microseconds(100)) }
            let cancelled = ContinuousClock.now
            task.cancel()
            _ = await task.result
            let elapsed = ContinuousClock.now - cancelled
            samples.append(milliseconds(elapsed))
        }
        samples.sort()
        return [
            Row(name: "cancel → call returns p50", value: samples[samples.count / 2], unit: "ms", note: "stalled stream, 20 samples"),
            Row(name: "cancel → call returns max", value: samples.last ?? 0, unit: "ms", note: "requirement: < 100 ms"),
        ]
    }

    /// What synchronous=FULL costs the update ledger: each update is saved on receipt, then marked
    /// answering and handled (three commits), on a file in the temporary directory.
    static func durability() async throws -> [Row] {
        var rows: [Row] = []
        for durability in [Durability.normal, .full] {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: directory) }
            let store = try SQLiteStore(path: directory.appendingPathComponent("db.sqlite").path, durability: durability)
            let count = 300
            let start = ContinuousClock.now
            for id in 1...count {
                let update = Telegram.Update(
                    update_id: Int64(id),
                    message: Telegram.Message(
                        message_id: id, from: .init(id: 7, is_bot: false, first_name: "U"), chat: .init(id: 7, type: "private"), date: 1,
                        text: "question \(id)"))
                let payload = String(decoding: try JSONEncoder().encode(update), as: UTF8.self)
                _ = try await store.saveReceived([UpdateRow(id: update.update_id, chatID: update.chatID, payload: payload)])
                try await store.setUpdateStatus(Int64(id), .answering)
                try await store.setUpdateStatus(Int64(id), .handled)
            }
            let perUpdate = milliseconds(ContinuousClock.now - start) / Double(count)
            rows.append(
                Row(
                    name: "update ledger, synchronous=\(durability.rawValue.uppercased())", value: perUpdate, unit: "ms",
                    note: "3 commits per update (received, answering, handled), wall time on this disk"))
        }
        return rows
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// The process's own peak RSS (`VmHWM`). Not `ru_maxrss`: that survives exec, so under
    /// `swift run` it reported SwiftPM's memory before the benchmark replaced it (135 MiB, not 64).
    static func peakRSSKilobytes() -> Int {
        Proc.status(getpid(), "VmHWM")
    }
}

import Synchronization

final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
