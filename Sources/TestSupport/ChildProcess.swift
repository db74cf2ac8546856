import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A program started by tests and benchmarks, with `posix_spawn` and nothing else.
///
/// Foundation's `Process` is not used because:
/// - its `run()` copies every `/proc/self/fd` entry's whole 256-byte name. The test process crashed
///   there (a read past the end of `readdir`'s buffer) while one test held 2,000 sockets open, and
///   Swift's backtracer then held all 1,700 threads for 27 s: every test waiting meanwhile failed.
/// - its manager thread and run loop notice an exit only when they get to it.
///
/// Here the child starts with:
/// - no descriptor of ours but the three standard ones (`closefrom` in the child);
/// - no signal blocked: libdispatch's threads block nearly all, and a child would inherit that;
/// - a process group of its own, so a signal meant for the tests never reaches it.
///
/// Nothing waits in a thread: `isRunning` reaps the child with `waitpid(WNOHANG)`.
public final class ChildProcess: Sendable {
    /// How the child ended.
    public enum Ending: Equatable, Sendable {
        case exited(Int32)
        case signalled(Int32)
    }

    public let pid: pid_t
    private let ending = Mutex<Ending?>(nil)

    /// Starts `executable` with `arguments`. `environment` nil: this process's own. `output`: a
    /// file that gets standard output and standard error (nil: `/dev/null`). Standard input is
    /// always `/dev/null`.
    public init(
        _ executable: String, _ arguments: [String] = [], environment: [String: String]? = nil, directory: String? = nil,
        output: String? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        try Self.check(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0), "stdin")
        try Self.check(posix_spawn_file_actions_addopen(&actions, 1, output ?? "/dev/null", O_WRONLY | O_APPEND | O_CREAT, 0o600), "stdout")
        try Self.check(posix_spawn_file_actions_adddup2(&actions, 1, 2), "stderr")
        try Self.check(Self.closeFrom(&actions, 3), "closefrom")
        if let directory { try Self.check(Self.changeDirectory(&actions, directory), "chdir \(directory)") }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        try Self.check(posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP)), "flags")

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let pairs = environment.map { $0.map { "\($0.key)=\($0.value)" } }
        let envp = pairs.map { $0.map { strdup($0) } + [nil] }
        defer { envp?.forEach { free($0) } }

        var pid = pid_t()
        let status = envp.map { posix_spawn(&pid, executable, &actions, &attributes, argv, $0) }
            ?? posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        try Self.check(status, "posix_spawn \(executable)")
        self.pid = pid
    }

    /// Whether the child still runs; reaps it once it has ended.
    public var isRunning: Bool { ended == nil }

    /// How the child ended; nil while it runs.
    public var ended: Ending? {
        ending.withLock { ending in
            if ending == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    ending = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
                }
            }
            return ending
        }
    }

    /// The exit status, or the number of the signal that ended the child (as Foundation's
    /// `terminationStatus`); -1 while it runs.
    public var terminationStatus: Int32 {
        switch ended {
        case .exited(let code): code
        case .signalled(let signal): signal
        case nil: -1
        }
    }

    /// Waits until the child has ended, polling, so that no cooperative thread blocks in
    /// `waitpid`; throws `WaitTimedOut` after `timeout`.
    @discardableResult
    public func end(within timeout: Duration = .seconds(60)) async throws -> Ending {
        try await waitFor("process \(pid) to exit", timeout: timeout) { !isRunning }
        return ended!
    }

    /// Runs a program to its end: how it ended and what it wrote on standard output and error.
    /// The output goes through a file, so a chatty program can never fill a pipe and hang.
    public static func run(
        _ executable: String, _ arguments: [String] = [], environment: [String: String]? = nil, directory: String? = nil,
        timeout: Duration = .seconds(60)
    ) async throws -> (ending: Ending, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("output-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try ChildProcess(executable, arguments, environment: environment, directory: directory, output: output)
        let ending = try await child.end(within: timeout)
        return (ending, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// Blocks the calling thread until the child has ended (for benchmarks and tools: a test
    /// polls `isRunning` instead, so that no cooperative thread blocks).
    @discardableResult
    public func waitForEnd() -> Ending {
        while true {
            if let ended { return ended }
            usleep(5_000)
        }
    }

    /// Sends `signal` to the child, unless it has already been reaped (its pid may be another's).
    public func send(_ signal: Int32) {
        ending.withLock { ending in
            if ending == nil { _ = kill(pid, signal) }
        }
    }

    /// A child still running when its owner goes is killed: a test that fails half-way must not
    /// leave a bot polling ports that other tests' fakes get next. Nothing waits for it to die;
    /// until this process ends it stays a zombie, an entry in the process table and nothing more.
    deinit {
        if isRunning { kill(pid, SIGKILL) }
    }

    private static func check(_ status: Int32, _ what: String) throws {
        guard status == 0 else { throw SpawnError(what: what, code: status) }
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` and `..._addchdir_np`, which Swift's
    /// Glibc module does not declare.
    private static func closeFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) -> Int32 {
        typealias Function = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return ENOSYS }
        return unsafeBitCast(symbol, to: Function.self)(&actions, lowest)
    }

    private static func changeDirectory(_ actions: inout posix_spawn_file_actions_t, _ path: String) -> Int32 {
        typealias Function = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np") else { return ENOSYS }
        return path.withCString { unsafeBitCast(symbol, to: Function.self)(&actions, $0) }
    }
}

/// A program could not be started.
public struct SpawnError: Error, CustomStringConvertible {
    public let what: String
    public let code: Int32
    public var description: String { "cannot start a program (\(what)): \(String(cString: strerror(code)))" }
}
