import Foundation
import Testing
import TestSupport

/// The usual proxy variables reach every request: Telegram's and the model's go to `http_proxy`
/// (libcurl reads it), and `no_proxy` takes a host out. The proxy here is a scripted server on
/// 127.0.0.1 that answers as the servers behind it; the hosts are `*.localhost`, which libcurl never
/// looks up in DNS, so nothing leaves the machine even if the proxy were ignored.
@Suite(.timeLimit(.minutes(2))) struct ProxyTests {
    static func response(_ json: String) -> [UInt8] {
        Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\nConnection: close\r\n\r\n\(json)".utf8)
    }

    @Test func checkReachesTelegramAndTheModelThroughTheProxy() async throws {
        let binary = try #require(CrashRecoveryTests.binary, "the telegram-assistant binary is built by swift test")
        let getMe = Self.response(#"{"ok":true,"result":{"id":7,"is_bot":true,"first_name":"B","username":"proxied_bot"}}"#)
        let models = Self.response(#"{"object":"list","data":[{"id":"m","object":"model"}]}"#)
        // `check` asks Telegram first, then the model: one connection each.
        let proxy = try RawTCPServer { connection in [.readRequest, .send(connection == 0 ? getMe : models)] }
        defer { proxy.stop() }
        let directory = TemporaryDirectory()
        let environment = [
            "PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://model.localhost/v1", "OPENAI_MODEL": "m",
            "TELEGRAM_BOT_TOKEN": "123456:TEST-token-abcdefghijklmnopqrstuv", "TELEGRAM_API_URL": "http://api.localhost",
            "ALLOW_INSECURE_HTTP": "true", "DATABASE_PATH": directory.path + "/db.sqlite",
            "http_proxy": "http://127.0.0.1:\(proxy.port)",
        ]
        let (status, output) = try await runToEnd(binary, ["check"], environment: environment, timeout: .seconds(30))
        #expect(status == 0, "\(output)")
        #expect(output.contains("ok   telegram: the token belongs to @proxied_bot"), "\(output)")
        #expect(output.contains("ok   model provider: http://model.localhost/v1 lists m"), "\(output)")
        let requests = proxy.requests
        #expect(requests.count == 2)
        #expect(requests.first?.hasPrefix("POST http://api.localhost/bot123456:TEST-token-abcdefghijklmnopqrstuv/getMe HTTP/1.1") == true, "\(requests)")
        #expect(requests.last?.hasPrefix("GET http://model.localhost/v1/models HTTP/1.1") == true, "\(requests)")
        #expect(requests.last?.lowercased().contains("authorization: bearer sk-test") == true)
    }

    @Test func noProxyTakesAHostOutOfTheProxy() async throws {
        let binary = try #require(CrashRecoveryTests.binary, "the telegram-assistant binary is built by swift test")
        let llm = try FakeOpenAIServer(.init(apiKey: "sk-test", models: ["m"]))
        let telegram = try FakeTelegramServer()
        // A proxy that refuses everything: only a request that bypasses it can succeed.
        let proxy = try RawTCPServer { _ in [.readRequest, .send(Array("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".utf8))] }
        defer { proxy.stop() }
        let directory = TemporaryDirectory()
        let environment = [
            "PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": llm.baseURL.absoluteString, "OPENAI_MODEL": "m",
            "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.baseURL.absoluteString,
            "DATABASE_PATH": directory.path + "/db.sqlite",
            "http_proxy": "http://127.0.0.1:\(proxy.port)", "no_proxy": "127.0.0.1",
        ]
        let (status, output) = try await runToEnd(binary, ["check"], environment: environment, timeout: .seconds(30))
        #expect(status == 0, "\(output)")
        #expect(proxy.requests.isEmpty, "\(proxy.requests)")
    }
}
