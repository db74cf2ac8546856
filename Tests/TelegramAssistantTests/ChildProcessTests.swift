import Foundation
import Testing
import TestSupport

/// The tests' way to start programs (`ChildProcess`, not Foundation's `Process`).
@Suite(.timeLimit(.minutes(1))) struct ChildProcessTests {
    /// With two thousand sockets open here (a burst test's worth), the child still starts, and
    /// it holds none of them: a bot that kept a fake server's connection open would hide from
    /// that server that the test had hung up.
    @Test func theChildGetsNoDescriptorOfOursHoweverManyAreOpen() async throws {
        raiseOpenFileLimit(to: 4096)
        let sockets = (0..<2000).map { _ in socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
        defer { sockets.forEach { close($0) } }
        try #require(sockets.allSatisfy { $0 >= 0 }, "the test could not open its sockets")
        let (ended, listing) = try await ChildProcess.run("/bin/ls", ["/proc/self/fd"])
        #expect(ended == .exited(0))
        // 0, 1 and 2, and the directory ls reads.
        let descriptors = Set(listing.split(separator: "\n").compactMap { Int32($0) })
        #expect(descriptors.isSubset(of: [0, 1, 2, 3]), "inherited: \(descriptors.subtracting([0, 1, 2, 3]).sorted().prefix(10))")
    }

    /// libdispatch's threads, where tests run, block every signal; the child must not inherit
    /// that, or a bot would never see the SIGTERM a test sends it.
    @Test func theChildStartsWithNoSignalBlocked() async throws {
        let (ended, status) = try await ChildProcess.run("/bin/grep", ["SigBlk", "/proc/self/status"])
        #expect(ended == .exited(0))
        #expect(status.trimmingCharacters(in: .whitespacesAndNewlines) == "SigBlk:\t0000000000000000")
    }

    @Test func exitCodesSignalsAndTheDirectoryAreReported() async throws {
        let (exited, _) = try await ChildProcess.run("/bin/sh", ["-c", "exit 3"])
        #expect(exited == .exited(3))
        let (_, directory) = try await ChildProcess.run("/bin/pwd", [], directory: "/usr/lib")
        #expect(directory == "/usr/lib\n")

        let sleeper = try ChildProcess("/bin/sleep", ["30"])
        #expect(sleeper.isRunning)
        #expect(sleeper.terminationStatus == -1)
        sleeper.send(SIGKILL)
        #expect(try await sleeper.end() == .signalled(SIGKILL))
        #expect(sleeper.terminationStatus == SIGKILL)
    }

    @Test func aProgramThatCannotStartIsAnError() throws {
        let error = #expect(throws: SpawnError.self) { try ChildProcess("/nonexistent/program") }
        #expect(error?.code == ENOENT)
        #expect("\(error.map { "\($0)" } ?? "")".contains("No such file or directory"))
    }
}
