import Foundation
import Testing
import TestSupport

@testable import CurlHTTP

/// HTTPS against a local server with a self-signed certificate (`openssl s_server`, which Debian's
/// ca-certificates package pulls in): trusted only when the client is given that certificate.
@Suite(.timeLimit(.minutes(1))) struct TLSTests {
    @Test func aSelfSignedServerIsTrustedOnlyThroughItsCAFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let (made, output) = try await ChildProcess.run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert,
        ])
        try #require(made == .exited(0), "openssl could not make a certificate: \(output)")

        let port = try freePort()
        let server = try ChildProcess("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", cert, "-key", key, "-www", "-quiet"])
        defer { server.send(SIGTERM) }
        try await waitFor("openssl s_server to listen", timeout: .seconds(10)) { RawTCPServer.isListening(port: port) }

        let url = URL(string: "https://127.0.0.1:\(port)/")!
        let trusting = HTTPClient(.init(caBundlePath: cert))
        let response = try await trusting.fetch(HTTPRequest(url: url), deadline: .seconds(10))
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self).contains("s_server"))

        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await HTTPClient().fetch(HTTPRequest(url: url), deadline: .seconds(10))
        }
        #expect(error?.kind == .tls)
    }

    /// A port nothing listens on right now (the kernel's pick, released at once).
    private func freePort() throws -> Int {
        let server = try RawTCPServer { _ in [] }
        let port = server.port
        server.stop()
        return port
    }
}
