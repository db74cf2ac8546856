import Foundation
import GRDB
import Synchronization
import Testing

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import Support
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd
@testable import TerminalFrontEnd

@Suite(.timeLimit(.minutes(2))) struct StoreTests {
    @Test func migratesAFreshDatabaseAndCreatesItPrivate() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/nested/assistant.sqlite"
        let store = try SQLiteStore(path: path)
        #expect(try await store.appliedMigrations() == ["v1: conversations and messages", "v2: telegram updates", "v3: pending replies", "v4: attachments", "v5: replicas and chat leases"])
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test func anUnwritableLocationIsAClearError() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/assistant.sqlite"
        _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o400])
        if getuid() == 0 {
            // root may write anything; a path under a regular file fails for everyone instead.
            let bad = path + "/inside-a-file.sqlite"
            #expect { try SQLiteStore(path: bad) } throws: { "\($0)".contains("inside-a-file.sqlite") || "\($0)".contains(directory.path) }
            return
        }
        #expect { try SQLiteStore(path: path) } throws: { "\($0)".contains("not writable") }
    }
}

extension StoreTests {
    /// `check` run as root inside the service's state directory (owned by the service's user) must
    /// leave files that user can still write.
    @Test(.enabled(if: geteuid() == 0, "only root creates files for another user"))
    func filesRootCreatesBelongToTheOwnerOfTheirDirectory() async throws {
        let directory = TemporaryDirectory()
        let state = directory.path + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false)
        #expect(chown(state, 4321, 4322) == 0)
        let path = state + "/assistant.sqlite"
        do {
            let store = try SQLiteStore(path: path)
            try await store.appendMessage(conversationID: try await store.createConversation(kind: "terminal").id, role: .user, content: "hi")
            let lock = try InstanceLock(databasePath: path)
            withExtendedLifetime(lock) {}
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: state) {
            var info = stat()
            #expect(stat(state + "/" + name, &info) == 0)
            #expect(info.st_uid == 4321 && info.st_gid == 4322, "\(name) is owned by \(info.st_uid):\(info.st_gid)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: state).contains("assistant.sqlite.lock"))
    }

    /// `write(durable: false)` commits with `synchronous=NORMAL` (no sync of the disk) and leaves
    /// the connection at FULL for the next write, both in place and behind another write (on
    /// GRDB's queue); a durable write commits at FULL.
    @Test func aWriteThatNeedNotBeDurableSkipsTheSyncAndOnlyThatOne() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStore(path: directory.path + "/assistant.sqlite")
        let level: @Sendable (Database) throws -> Int = { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
        let durableBefore = store.durableCommits.load(ordering: .relaxed)
        #expect(try await store.write(durable: false, level) == 1)
        #expect(try store.synchronousLevel() == 2)
        #expect(try await store.write(level) == 2)
        #expect(store.durableCommits.load(ordering: .relaxed) == durableBefore + 1)

        // Behind a write that holds the connection, the lazy one waits on GRDB's queue. The holding
        // write blocks its thread: one of its own, never one of the two the other tests share.
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let first = Task(executorPreference: WorkerThread(name: "one-thread")) {
            try await store.write { db in
                holding.signal()
                release.wait()
                return try level(db)
            }
        }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                holding.wait()
                continuation.resume()
            }
        }
        let queued = Task.detached { try await store.write(durable: false, level) }
        release.signal()
        #expect(try await first.value == 2)
        #expect(try await queued.value == 1)
        #expect(try store.synchronousLevel() == 2)
    }

    /// A Telegram reply in a new chat syncs the disk three times: the update received (before
    /// Telegram is told), the final text (before it is delivered), the update handled. The
    /// conversation, the user's turn and the model's answer ride along with those.
    @Test func aReplySyncsTheDiskThreeTimes() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStore(path: directory.path + "/bot.sqlite")
        let harness = try BotHarness(store: store)
        try await harness.withBot { _ in
            try await harness.eventually("the bot's first poll") { harness.telegram.calls.contains { $0.method == "getUpdates" } }
            let before = store.durableCommits.load(ordering: .relaxed)
            harness.telegram.deliverText("hello", chatID: 1_234)
            try await harness.eventually("the answer") { harness.texts(1_234).count == 1 }
            try await harness.eventually("the update handled") { await store.openUpdatesCount == 0 }
            #expect(store.durableCommits.load(ordering: .relaxed) - before == 3)
        }
        let conversation = try await store.conversation(kind: "telegram", externalID: 1_234)
        #expect(try await store.allMessages(conversationID: conversation.id).map(\.role) == [.user, .assistant])
    }
}

@Suite(.timeLimit(.minutes(2))) struct LockedDatabaseTests {
    @Test func aDatabaseAnotherProcessHoldsIsAClearErrorAtStart() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/assistant.sqlite"
        _ = try SQLiteStore(path: path)  // migrated: reopening it needs no write of its own
        let holder = try WriteLockHolder(path: path)
        #expect {
            try SQLiteStore(path: path, busyTimeout: 0.05)
        } throws: {
            "\($0)" == "the database \(path) is locked by another process (waited 0.05 s): "
                + "stop the other telegram-assistant using it, or end the open transaction in an sqlite3 shell"
        }
        holder.release()
        #expect(try await SQLiteStore(path: path).appliedMigrations().count == 5)
    }

    @Test func aLockWhileRunningFailsThatWriteClearlyAndNothingElse() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/assistant.sqlite"
        let store = try SQLiteStore(path: path, busyTimeout: 0.05)
        let conversation = try await store.createConversation(kind: "terminal")
        try await store.appendMessage(conversationID: conversation.id, role: .user, content: "before")

        let holder = try WriteLockHolder(path: path)
        await #expect {
            try await store.appendMessage(conversationID: conversation.id, role: .user, content: "during")
        } throws: {
            "\($0)".contains("is locked by another process") && !"\($0)".contains("INSERT") && !"\($0)".contains("during")
        }
        #expect(try await store.allMessages(conversationID: conversation.id).map(\.content) == ["before"], "reads go on")
        holder.release()

        try await store.appendMessage(conversationID: conversation.id, role: .user, content: "after")
        #expect(try await store.allMessages(conversationID: conversation.id).map(\.content) == ["before", "after"])
    }

    /// A write that waits for another process's lock suspends its task: it does not hold one of
    /// the few threads every task shares (two waiting writers used to stall a 2-core host). Here
    /// the writers and another task share one thread: the other task runs while the lock is held
    /// only if no writer keeps that thread to wait. (A long busy timeout: on a loaded machine the
    /// lock may be let go seconds after the writers began to wait for it.)
    @Test func writesWaitingForALockLeaveTheTaskThreadsFree() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/assistant.sqlite"
        let store = try SQLiteStore(path: path, busyTimeout: 30)
        let conversation = try await store.createConversation(kind: "terminal")
        let holder = try WriteLockHolder(path: path)
        let events = DeltaCollector()
        let thread = WorkerThread(name: "one-thread")
        let writers = (0..<3).map { index in
            Task(executorPreference: thread) {
                try await store.appendMessage(conversationID: conversation.id, role: .user, content: "w\(index)")
                events.append("write")
            }
        }
        await Task(executorPreference: thread) { events.append("other task") }.value
        holder.release()
        for writer in writers { try await writer.value }
        #expect(events.all == ["other task", "write", "write", "write"])
        #expect(try await store.allMessages(conversationID: conversation.id).count == writers.count, "the writes went through once the lock was free")
    }

    @Test func aSecondBotOnTheSameDatabaseIsRefusedWithTheHoldersPID() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/assistant.sqlite"
        do {
            let first = try InstanceLock(databasePath: path)
            #expect {
                try InstanceLock(databasePath: path)
            } throws: {
                "\($0)".hasPrefix("another telegram-assistant (pid \(getpid())) is running a bot on the database \(path)")
            }
            withExtendedLifetime(first) {}
        }
        // Released with its owner, as the kernel releases it when a process dies.
        _ = try InstanceLock(databasePath: path)
    }
}
