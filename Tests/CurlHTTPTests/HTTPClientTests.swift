import CCurl
import Foundation
import Testing
import TestSupport

@testable import CurlHTTP

private func url(_ port: Int, _ path: String = "/", host: String = "127.0.0.1") -> URL {
    URL(string: "http://\(host):\(port)\(path)")!
}

private func head(_ text: String) -> RawTCPServer.Action { .send(Array(text.utf8)) }

@Suite(.timeLimit(.minutes(1))) struct HTTPClientTests {
    let client = HTTPClient()

    @Test func chunkedBodyArrivesAsItIsSent() async throws {
        let server = try FakeHTTPServer { _ in
            ScriptedResponse(status: 200, steps: [.bytes(Data("first ".utf8)), .waitForClientClose])
        }
        let response = try await client.send(HTTPRequest(url: url(server.port)))
        #expect(response.status == 200)
        #expect(response.headers["transfer-encoding"] == "chunked")
        var body = response.body.makeAsyncIterator()
        // The server is still holding the connection open: the first bytes came on their own.
        #expect(try await body.next() == Array("first ".utf8))
    }

    /// Status lines as libcurl hands them over, read from the bytes.
    @Test func statusLines() {
        func status(_ line: String) -> Int { Array(line.utf8).withUnsafeBufferPointer { Transfer.status($0) } }
        #expect(status("HTTP/1.1 200 OK") == 200)
        #expect(status("HTTP/2 429") == 429)
        #expect(status("HTTP/1.1 100 Continue") == 100)
        #expect(status("HTTP/1.1 20") == 0)
        #expect(status("HTTP/1.1 2000 Too Long") == 0)
        #expect(status("HTTP/1.1") == 0)
    }

    @Test func contentLengthBody() async throws {
        let server = try RawTCPServer { _ in
            [.readRequest, head("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Thing:  spaced \r\n\r\nhello"), .pause(.milliseconds(20)), head(" world")]
        }
        let response = try await client.fetch(HTTPRequest(url: url(server.port)), deadline: .seconds(10))
        #expect(response.status == 200)
        #expect(response.headers["x-thing"] == "spaced ")
        #expect(response.body == Array("hello world".utf8))
    }

    @Test func postSendsMethodHeadersAndBody() async throws {
        let server = try FakeHTTPServer { request in
            .json(201, "{\"method\":\"\(request.method)\",\"auth\":\"\(request.headers["authorization"] ?? "")\",\"length\":\(request.body.count),\"expect\":\"\(request.headers["expect"] ?? "")\"}")
        }
        let body = [UInt8](repeating: 120, count: 200_000)
        let request = HTTPRequest(method: "POST", url: url(server.port, "/p"), headers: [("Authorization", "Bearer k")], body: body)
        let response = try await client.fetch(request, deadline: .seconds(10))
        #expect(response.status == 201)
        #expect(String(decoding: response.body, as: UTF8.self) == "{\"method\":\"POST\",\"auth\":\"Bearer k\",\"length\":200000,\"expect\":\"\"}")
    }

    /// One connection per host, kept alive: requests one after another share it, and a server
    /// that closes after each answer gets a new one each time.
    @Test func requestsOneAfterAnotherShareAKeptAliveConnection() async throws {
        let keeps = try FakeHTTPServer { _ in .json(200, "{}") }
        let closes = try FakeHTTPServer(keepAlive: false) { _ in .json(200, "{}") }
        for _ in 0..<5 {
            for server in [keeps, closes] {
                let response = try await client.fetch(HTTPRequest(method: "POST", url: url(server.port), body: Array("{}".utf8)), deadline: .seconds(10))
                #expect(response.status == 200)
            }
        }
        #expect(keeps.connectionsAccepted == 1)
        #expect(closes.connectionsAccepted == 5)
    }

    @Test func aBodyCutShortIsAnError() async throws {
        let server = try RawTCPServer { _ in [.readRequest, head("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")] }
        await #expect(throws: HTTPClientError(.connectionLost, code: 18)) {
            _ = try await client.fetch(HTTPRequest(url: url(server.port)), deadline: .seconds(10))
        }
        let chunked = try FakeHTTPServer { _ in ScriptedResponse(status: 200, steps: [.bytes(Data("partial".utf8))], ending: .abort) }
        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await client.fetch(HTTPRequest(url: url(chunked.port)), deadline: .seconds(10))
        }
        #expect(error?.kind == .connectionLost)
    }

    @Test func aServerThatHangsUpBeforeAnsweringLosesTheConnection() async throws {
        let server = try RawTCPServer { _ in [.readRequest] }
        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await client.send(HTTPRequest(url: url(server.port)))
        }
        #expect(error?.kind == .connectionLost)
    }

    @Test func nobodyListeningIsCannotConnect() async throws {
        let server = try RawTCPServer { _ in [] }
        let port = server.port
        server.stop()
        try await waitFor("the listener to close") { !RawTCPServer.isListening(port: port) }
        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await client.send(HTTPRequest(url: url(port)))
        }
        #expect(error?.kind == .cannotConnect)
    }

    @Test func slowHeadsAreWaitedForButAMissingOneTimesOut() async throws {
        let slow = try RawTCPServer { _ in [.readRequest, .pause(.milliseconds(300)), head("HTTP/1.1 204 No Content\r\n\r\n")] }
        let response = try await client.fetch(HTTPRequest(url: url(slow.port), idleTimeout: .seconds(2)), deadline: .seconds(10))
        #expect(response.status == 204)

        let silent = try RawTCPServer { _ in [.readRequest, .waitForClientClose] }
        let start = ContinuousClock.now
        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await client.send(HTTPRequest(url: url(silent.port), idleTimeout: .seconds(1)))
        }
        #expect(error?.kind == .timedOut)
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func aStalledBodyTimesOut() async throws {
        let server = try FakeHTTPServer { _ in ScriptedResponse(status: 200, steps: [.bytes(Data("x".utf8)), .waitForClientClose]) }
        let response = try await client.send(HTTPRequest(url: url(server.port), idleTimeout: .seconds(1)))
        let error = await #expect(throws: HTTPClientError.self) {
            for try await _ in response.body {}
        }
        #expect(error?.kind == .timedOut)
        try await waitFor("the server to see the connection closed") { server.clientDisconnects == 1 }
    }

    @Test func cancellingMidBodyClosesTheConnectionAtOnce() async throws {
        let server = try FakeHTTPServer { _ in ScriptedResponse(status: 200, steps: [.bytes(Data("x".utf8)), .waitForClientClose]) }
        let client = self.client
        let gotFirst = AsyncStream<Void>.makeStream()
        let reader = Task {
            let response = try await client.send(HTTPRequest(url: url(server.port)))
            var body = response.body.makeAsyncIterator()
            _ = try await body.next()
            gotFirst.continuation.yield()
            _ = try await body.next()
        }
        var signals = gotFirst.stream.makeAsyncIterator()
        await signals.next()
        reader.cancel()
        await #expect(throws: CancellationError.self) { try await reader.value }
        try await waitFor("the server to see the connection closed", timeout: .seconds(5)) { server.clientDisconnects == 1 }
        try await waitFor("the event thread to drop the transfer") { client.activeTransfers == 0 }
    }

    @Test func cancellingBeforeTheHeadEndsTheWait() async throws {
        let server = try RawTCPServer { _ in [.readRequest, .waitForClientClose] }
        let client = self.client
        let waiting = Task { try await client.send(HTTPRequest(url: url(server.port))) }
        try await waitFor("the request to arrive") { server.requests.count == 1 }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiting.value }
        try await waitFor("the server to see the connection closed", timeout: .seconds(5)) { server.clientCloses == 1 }
    }

    @Test func droppingTheBodyEndsTheTransfer() async throws {
        let server = try FakeHTTPServer { _ in
            ScriptedResponse(status: 200, steps: [.bytes(Data(repeating: 65, count: 1024)), .waitForClientClose])
        }
        do {
            let response = try await client.send(HTTPRequest(url: url(server.port)))
            var iterator = response.body.makeAsyncIterator()
            let first = try await iterator.next()
            #expect(first?.isEmpty == false)
        }
        try await waitFor("the connection closed", timeout: .seconds(10)) { server.clientDisconnects == 1 }
    }

    /// A reader that falls behind pauses the transfer instead of buffering without bound; once it
    /// reads again, every byte arrives, in order.
    @Test func aSlowReaderPausesTheTransfer() async throws {
        let total = 64 << 20
        var payload = [UInt8](repeating: 0, count: total)
        for index in stride(from: 0, to: total, by: 4096) { payload[index] = UInt8(truncatingIfNeeded: index / 4096) }
        let bytes = payload
        let server = try RawTCPServer { _ in [.readRequest, head("HTTP/1.1 200 OK\r\nContent-Length: \(total)\r\n\r\n"), .send(bytes)] }
        let response = try await client.send(HTTPRequest(url: url(server.port)))
        let transfer = response.body.owner.transfer
        try await waitFor("the transfer to pause") { transfer.state.withLock { $0.paused } }
        #expect(transfer.state.withLock { $0.buffer.count } <= Transfer.highWater + 16_384)
        #expect(server.bytesSent < total)
        // Checked batch by batch against what was sent, without a second 64 MiB copy.
        var received = 0
        var same = true
        for try await batch in response.body {
            guard received + batch.count <= total else { same = false; break }
            same = same && batch.withUnsafeBytes { got in got.isEmpty || payload.withUnsafeBytes { memcmp(got.baseAddress!, $0.baseAddress! + received, got.count) == 0 } }
            received += batch.count
        }
        #expect(received == total)
        #expect(same, "the bytes arrived as they were sent")
    }

    /// With a delivery interval, what comes in many small writes reaches the reader in a few batches;
    /// every byte arrives, in order.
    @Test func aDeliveryIntervalBatchesSmallWrites() async throws {
        let pieces = (0..<10).map { Data("piece\($0);".utf8) }
        let steps = pieces.flatMap { [ScriptedResponse.Step.bytes($0), .pause(.milliseconds(20))] }
        let server = try FakeHTTPServer { _ in ScriptedResponse(status: 200, steps: steps) }
        var batches: [[UInt8]] = []
        let response = try await client.send(HTTPRequest(url: url(server.port), deliveryInterval: .milliseconds(250)))
        for try await batch in response.body { batches.append(batch) }
        #expect(batches.flatMap { $0 } == Array(pieces.reduce(Data(), +)))
        #expect(batches.count <= 4, "\(batches.count) hand-overs for 10 writes 20 ms apart")

    }

    /// A reader can turn batching on once it has what it needed at once (a model's first text).
    @Test func aReaderTurnsBatchingOnMidStream() async throws {
        let pieces = (0..<12).map { Data("piece\($0);".utf8) }
        let steps = pieces.flatMap { [ScriptedResponse.Step.bytes($0), .pause(.milliseconds(20))] }
        let server = try FakeHTTPServer { _ in ScriptedResponse(status: 200, steps: steps) }
        let response = try await client.send(HTTPRequest(url: url(server.port)))
        var body = response.body.makeAsyncIterator()
        var received = try #require(try await body.next())
        body.deliver(every: .milliseconds(250))
        var batches = 0
        while let batch = try await body.next() {
            received += batch
            batches += 1
        }
        #expect(received == Array(pieces.reduce(Data(), +)))
        #expect(batches <= 4, "\(batches) hand-overs for the 11 writes after the first")
    }

    /// The interval never holds back the first bytes: with a 10 s interval, bytes that find the
    /// reader waiting (a model that thinks before it answers) come at once.
    @Test func aDeliveryIntervalDoesNotDelayTheFirstBytes() async throws {
        let server = try RawTCPServer { _ in
            [.readRequest, .send(Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n".utf8)), .pause(.milliseconds(300)),
             .send(Array("first".utf8)), .waitForClientClose]
        }
        let start = ContinuousClock.now
        let response = try await client.send(HTTPRequest(url: url(server.port), deliveryInterval: .seconds(10)))
        var body = response.body.makeAsyncIterator()
        #expect(try await body.next() == Array("first".utf8))
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func aServerThatNeverReadsIsLeftBehindOnCancel() async throws {
        let server = try RawTCPServer { _ in [.ignoreClient] }
        let client = self.client
        let upload = Task {
            try await client.send(HTTPRequest(method: "POST", url: url(server.port), body: [UInt8](repeating: 1, count: 64 << 20)))
        }
        try await waitFor("the client to be sending") { client.activeTransfers == 1 }
        upload.cancel()
        await #expect(throws: CancellationError.self) { _ = try await upload.value }
        try await waitFor("the event thread to drop the transfer") { client.activeTransfers == 0 }

        let timed = try RawTCPServer { _ in [.ignoreClient] }
        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await client.send(HTTPRequest(method: "POST", url: url(timed.port), body: [UInt8](repeating: 1, count: 64 << 20), idleTimeout: .seconds(1)))
        }
        #expect(error?.kind == .timedOut)
    }

    @Test func aThousandConcurrentStreams() async throws {
        raiseOpenFileLimit(to: 4096)
        let server = try FakeHTTPServer { request in
            ScriptedResponse(status: 200, steps: [.bytes(Data(request.path.utf8)), .pause(.milliseconds(200)), .bytes(Data(" done".utf8))])
        }
        let client = self.client
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<1000 {
                group.addTask {
                    let response = try await client.fetch(HTTPRequest(url: url(server.port, "/\(index)")), deadline: .seconds(50))
                    return response.body == Array("/\(index) done".utf8)
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 1000)
        #expect(results.allSatisfy { $0 })
    }

    @Test func redirectsAreFollowedWithoutHandingTheKeyToAnotherHost() async throws {
        let target = try FakeHTTPServer { request in
            .json(200, "{\"path\":\"\(request.path)\",\"auth\":\"\(request.headers["authorization"] ?? "none")\"}")
        }
        let sameHost = try FakeHTTPServer { request in
            request.path == "/old"
                ? ScriptedResponse(status: 307, headers: ["Location": "/new"])
                : .json(200, "{\"auth\":\"\(request.headers["authorization"] ?? "none")\",\"body\":\(request.body.count)}")
        }
        let request = HTTPRequest(method: "POST", url: url(sameHost.port, "/old"), headers: [("Authorization", "Bearer secret")], body: Array("12345".utf8))
        let same = try await client.fetch(request, deadline: .seconds(10))
        #expect(String(decoding: same.body, as: UTF8.self) == "{\"auth\":\"Bearer secret\",\"body\":5}")

        for host in ["localhost", "127.0.0.1"] {
            // Another host name, or the same host on another port: either way, not where the key was meant to go.
            let away = try FakeHTTPServer { _ in ScriptedResponse(status: 307, headers: ["Location": "http://\(host):\(target.port)/landed"]) }
            let moved = try await client.fetch(
                HTTPRequest(url: url(away.port, "/x"), headers: [("Authorization", "Bearer secret")]), deadline: .seconds(10))
            #expect(moved.status == 200)
            #expect(String(decoding: moved.body, as: UTF8.self) == "{\"path\":\"/landed\",\"auth\":\"none\"}")
        }

        let loop = try FakeHTTPServer { _ in ScriptedResponse(status: 302, headers: ["Location": "/again"]) }
        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await client.fetch(HTTPRequest(url: url(loop.port)), deadline: .seconds(10))
        }
        #expect(error?.kind == .tooManyRedirects)
    }

    @Test func onlyHTTPAndHTTPSAreSpoken() async throws {
        await #expect(throws: HTTPClientError(.invalidURL)) {
            _ = try await client.send(HTTPRequest(url: URL(string: "file:///etc/passwd")!))
        }
        let server = try FakeHTTPServer { _ in ScriptedResponse(status: 302, headers: ["Location": "file:///etc/passwd"]) }
        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await client.fetch(HTTPRequest(url: url(server.port)), deadline: .seconds(10))
        }
        #expect(error?.kind == .invalidURL)
    }

    @Test func errorsNeverNameTheURL() {
        let error = HTTPClientError(curl: CURLE_COULDNT_CONNECT, connected: false)
        #expect("\(error)" == "HTTP cannotConnect (libcurl 7)")
        #expect(HTTPClientError(curl: CURLE_OPERATION_TIMEDOUT, connected: false).kind == .cannotConnect)
        #expect(HTTPClientError(curl: CURLE_OPERATION_TIMEDOUT, connected: true).kind == .timedOut)
    }
}
