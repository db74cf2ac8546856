import Foundation
import Testing
import TestSupport

@testable import CurlHTTP

/// The name of the thread running the caller (the event thread is "curl-event-loop").
private func threadName() -> String {
    ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
}

/// `HTTPClient.executor`: tasks that prefer it run on the event thread, between its I/O.
@Suite(.timeLimit(.minutes(1))) struct EventLoopExecutorTests {
    @Test func aTaskThatPrefersItRunsOnTheEventThreadAroundItsRequestsSleepsAndChildren() async throws {
        let client = HTTPClient()
        let server = try FakeHTTPServer { _ in .json(200, "{\"ok\":true}") }
        let names = try await withTaskExecutorPreference(client.executor) {
            var names = [threadName()]
            let response = try await client.fetch(HTTPRequest(url: URL(string: "http://127.0.0.1:\(server.port)/")!), deadline: .seconds(10))
            #expect(response.status == 200)
            names.append(threadName())
            try await client.clock.sleep(for: .milliseconds(5))
            names.append(threadName())
            let child = await withTaskGroup(of: String.self) { group in
                group.addTask { threadName() }
                return await group.next() ?? ""
            }
            names.append(child)
            return names
        }
        #expect(names == Array(repeating: "curl-event-loop", count: 4))
        // Without the preference, the same code runs in Swift's global pool.
        #expect(threadName() != "curl-event-loop")
    }

    @Test func onceTheClientIsGoneItsTasksGoOnInTheGlobalPool() async throws {
        var client: HTTPClient? = HTTPClient()
        let executor = client!.executor
        let loop = client!.loopForTests
        client = nil
        try await waitFor("the event thread to stop") { loop.hasStopped }
        let name = await withTaskExecutorPreference(executor) {
            await Task.yield()
            return threadName()
        }
        #expect(name != "curl-event-loop")
    }
}
