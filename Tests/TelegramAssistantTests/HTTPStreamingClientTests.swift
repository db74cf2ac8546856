import Foundation
import Testing
import TestSupport

@testable import TelegramAssistant

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite(.timeLimit(.minutes(1))) struct HTTPStreamingClientTests {
    /// A reader that stops reading and lets the body go ends the transfer; nothing keeps the
    /// connection (and the bytes still coming) alive behind its back.
    @Test func droppingTheBodyEndsTheTransfer() async throws {
        let server = try FakeHTTPServer { _ in
            ScriptedResponse(status: 200, steps: [.bytes(Data(repeating: 65, count: 1024)), .waitForClientClose])
        }
        let client = HTTPStreamingClient()
        do {
            let response = try await client.send(URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/stream")!))
            var iterator = response.body.makeAsyncIterator()
            let first = try await iterator.next()
            #expect(first?.isEmpty == false)
        }
        try await waitUntil("the connection closed", timeout: .seconds(10)) { server.clientDisconnects == 1 }
    }
}
