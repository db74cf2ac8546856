import Foundation
import Testing

@Suite(.serialized, .timeLimit(.minutes(2))) struct DeployTests {
    /// The repository root, found from this file's path.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await runToEnd(URL(fileURLWithPath: "/bin/bash"), arguments, in: Self.root)
    }

    @Test func theInstallDryRunVerifiesTheUnitAndChangesNothing() async throws {
        let (status, output) = try await run(["deploy/install.sh", "--dry-run"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("+ swift build -c release --static-swift-stdlib --product telegram-assistant"))
        #expect(output.contains("+ install -m 0644 deploy/telegram-assistant.service /etc/systemd/system/telegram-assistant.service"))
        #expect(output.contains("+ install -m 0600 .env.example /etc/telegram-assistant/env") || output.contains("keeping the existing"))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") {
            #expect(output.contains("unit verified: Overall exposure level for telegram-assistant.service"))
            #expect(output.contains("OK") || output.contains("SAFE"))
        }
    }

    @Test func aBinaryBuiltElsewhereIsInstalledWithOnlyTheRuntimePackages() async throws {
        let (status, output) = try await run(["deploy/install.sh", "--dry-run", "--binary", "/bin/true"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("+ deploy/install-deps.sh --runtime"))
        #expect(output.contains("+ install -m 0755 /bin/true /usr/local/bin/telegram-assistant"))
        #expect(!output.contains("swift build"), "no toolchain needed")

        let (missing, complaint) = try await run(["deploy/install.sh", "--binary", "/nonexistent/telegram-assistant"])
        #expect(missing == 2)
        #expect(complaint.contains("/nonexistent/telegram-assistant is not an executable file"))
    }

    @Test func theUnitHasTheSettingsTheServiceRelieson() async throws {
        let unit = try String(contentsOf: Self.root.appendingPathComponent("deploy/telegram-assistant.service"), encoding: .utf8)
        for line in [
            "Type=notify", "ExecStart=/usr/local/bin/telegram-assistant run", "EnvironmentFile=/etc/telegram-assistant/env",
            "StateDirectory=telegram-assistant", "Restart=on-failure", "RestartPreventExitStatus=78", "WatchdogSec=",
            "TimeoutStopSec=45", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
            "PrivateDevices=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service",
            "CapabilityBoundingSet=", "LockPersonality=yes", "RestrictNamespaces=yes",
            // A process that holds the token and the chats never dumps core; its resources are bounded.
            "LimitCORE=0", "MemoryMax=", "TasksMax=", "LimitNOFILE=",
        ] {
            #expect(unit.contains(line), "missing \(line)")
        }
    }

    @Test func anUnknownOptionIsRefused() async throws {
        for script in ["deploy/install.sh", "deploy/install-deps.sh"] {
            let (status, output) = try await run([script, "--bogus"])
            #expect(status == 2, "\(script)")
            #expect(output.contains("usage:"), "\(script)")
        }
    }
}
