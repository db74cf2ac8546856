import Foundation
import Testing

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import Support
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd
@testable import TerminalFrontEnd

@Suite(.timeLimit(.minutes(2))) struct SystemdNotifierTests {
    /// A datagram socket standing in for systemd's.
    final class FakeSystemd {
        let path: String
        let fd: Int32

        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))").path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        }

        /// The next datagram, or nil after a minute. Polls without blocking: a blocking `recv` would
        /// hold one of the few cooperative threads the bot under test needs to send the datagram.
        func receive() async -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if count > 0 { return String(decoding: buffer[0..<count], as: UTF8.self) }
                try? await Task.sleep(for: .milliseconds(5))
            }
            return nil
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }

    @Test func sendsEachStateAsOneDatagram() async throws {
        let systemd = try FakeSystemd()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.path])
        #expect(notifier.isEnabled)
        #expect(notifier.notify("READY=1\nSTATUS=Polling"))
        #expect(notifier.notify("WATCHDOG=1"))
        #expect(notifier.notify("STOPPING=1"))
        #expect(await systemd.receive() == "READY=1\nSTATUS=Polling")
        #expect(await systemd.receive() == "WATCHDOG=1")
        #expect(await systemd.receive() == "STOPPING=1")
    }

    @Test func withoutNotifySocketItDoesNothing() {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isEnabled)
        #expect(!notifier.notify("READY=1"))
        #expect(notifier.watchdogInterval == nil)
    }

    @Test func theWatchdogIsPingedAtHalfItsInterval() {
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": String(getpid())])
        #expect(notifier.watchdogInterval == .seconds(15))
        let other = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"])
        #expect(other.watchdogInterval == nil, "a watchdog meant for another process")
    }
}
