import CurlHTTP
import Foundation
import GRDB
import Testing
import Logging
import TestSupport

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import Support
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd
@testable import TerminalFrontEnd

/// A configuration pointing at a fake server, with overrides by variable name.
func testConfig(_ server: FakeOpenAIServer, _ overrides: [String: String] = [:]) throws -> AssistantConfig {
    var values = [
        "OPENAI_API_KEY": server.settings.apiKey,
        "OPENAI_BASE_URL": server.baseURL.absoluteString,
        "OPENAI_MODEL": "test-model",
    ]
    values.merge(overrides) { $1 }
    return try AssistantConfig.parse(environment: values)
}

/// A log that tests can read back.
final class LogCapture: Sendable {
    let path: String
    let sink: LogSink

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString).jsonl").path
        sink = try LogSink(appendingTo: path)
    }

    var logger: Logger { Assistant.makeLogger(label: "test", level: .debug, sink: sink) }

    var text: String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// Every line parsed as a JSON object.
    var records: [[String: Any]] { records(containing: "") }

    /// The lines that contain `needle`, parsed (a cheap filter before the JSON parser).
    func records(containing needle: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap {
            guard needle.isEmpty || $0.contains(needle) else { return nil }
            return try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A temporary directory removed when the value goes away.
final class TemporaryDirectory: Sendable {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("ta-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Collects streamed deltas.
final class DeltaCollector: Sendable {
    private let pieces = Mutex<[String]>([])
    func append(_ piece: String) { pieces.withLock { $0.append(piece) } }
    var all: [String] { pieces.withLock { $0 } }
    var text: String { all.joined() }
}

import Synchronization

/// The parts a test needs, from the composition root with a test clock and a chosen store.
struct Harness {
    let server: FakeOpenAIServer
    let config: AssistantConfig
    let store: any Store
    let clock: RecordingClock
    let log: LogCapture
    let engine: ConversationEngine
    let runner: CompletionRunner

    init(
        _ settings: FakeOpenAIServer.Settings = .init(), overrides: [String: String] = [:], store: (any Store)? = nil,
        server: FakeOpenAIServer? = nil, timeouts: LLMTimeouts? = nil
    ) throws {
        self.server = try server ?? FakeOpenAIServer(settings)
        config = try testConfig(self.server, overrides)
        self.store = try store ?? SQLiteStore()
        clock = RecordingClock()
        log = try LogCapture()
        var overrides = Assistant.Overrides()
        overrides.http = HTTPClient()
        overrides.store = self.store
        overrides.modelRetryClock = clock
        overrides.random = { 0.5 }
        overrides.timeouts = timeouts ?? LLMTimeouts(firstByte: .seconds(60), idle: .seconds(60), total: .seconds(120))
        engine = try Assistant(config: config, logger: log.logger, overrides: overrides).engine
        runner = engine.runner
    }

    func request(_ content: String, model: String = "test-model") -> CompletionRequest {
        CompletionRequest(
            messages: [OpenAI.Message(role: .system, content: "sys"), OpenAI.Message(role: .user, content: content)],
            model: model, fallbackModel: config.fallbackModel, temperature: 0.4, maxOutputTokens: 100)
    }
}

/// Waits until `condition` holds, checking every few milliseconds; fails the test (instead of
/// spinning forever) when it does not hold within `timeout`.
func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () async -> Bool) async throws {
    do {
        try await waitFor(what, timeout: timeout, condition)
    } catch let error as WaitTimedOut {
        Issue.record("\(error)")
        throw CancellationError()
    }
}

/// Runs a program to its end (`ChildProcess.run`): its exit status, or the signal that ended it,
/// and its output.
func runToEnd(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil, in directory: URL? = nil, timeout: Duration = .seconds(60)) async throws -> (status: Int32, output: String) {
    let (ending, output) = try await ChildProcess.run(executable.path, arguments, environment: environment, directory: directory?.path, timeout: timeout)
    switch ending {
    case .exited(let code), .signalled(let code): return (code, output)
    }
}

/// Another process's write transaction on a database file (an sqlite3 shell left in `BEGIN`, or a
/// second bot), held by its own connection on its own thread, never a cooperative one, until `release()`.
final class WriteLockHolder: Sendable {
    private let released = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)

    init(path: String) throws {
        let queue = try DatabaseQueue(path: path)
        let locked = DispatchSemaphore(value: 0)
        final class Failure: Sendable { let error = Mutex<String?>(nil) }
        let failure = Failure()
        let (released, done) = (released, done)
        Thread {
            do {
                try queue.inTransaction(.immediate) { _ in
                    locked.signal()
                    released.wait()
                    return .rollback
                }
            } catch {
                failure.error.withLock { $0 = "\(error)" }
                locked.signal()
            }
            done.signal()
        }.start()
        locked.wait()
        if let error = failure.error.withLock({ $0 }) { throw StoreError(description: "could not hold the lock: \(error)") }
    }

    /// Ends the transaction and waits until the lock is gone.
    func release() {
        released.signal()
        done.wait()
    }
}
