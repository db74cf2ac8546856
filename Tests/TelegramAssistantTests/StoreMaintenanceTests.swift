import Foundation
import GRDB
import Synchronization
import Testing
import TestSupport

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import Support
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd
@testable import TerminalFrontEnd

/// The database of a bot that runs for months: durable commits, a bounded ledger, optional history
/// retention, and a file that shrinks when rows go.
@Suite(.timeLimit(.minutes(2))) struct StoreMaintenanceTests {
    /// Telegram is told an update was received only after its commit: a commit that a power cut
    /// could roll back (WAL with synchronous=NORMAL) would lose the update for good.
    @Test func commitsSurvivePowerLoss() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStore(path: directory.path + "/db.sqlite")
        #expect(try store.synchronousLevel() == 2, "synchronous=FULL")
        #expect(try SQLiteStore(path: directory.path + "/fast.sqlite", durability: .normal).synchronousLevel() == 1)
    }

    /// Handled updates used to be pruned only at start: a bot that ran for months kept every one.
    @Test func handledUpdatesArePrunedWhileTheBotRuns() async throws {
        let store = try SQLiteStore()
        let harness = try BotHarness(store: store)
        let bot = try await harness.connect(maintenanceInterval: .milliseconds(20), updateRetention: .zero)
        let group = bot.serviceGroup(logger: harness.log.logger)
        let running = Task { try await group.run() }
        defer { running.cancel() }
        harness.telegram.deliverText("hello", chatID: 811)
        try await harness.eventually("the answer") { harness.texts(811).count == 1 }
        try await harness.eventually("the handled update pruned") { (try? store.updateRowCount()) == 0 }
        running.cancel()
        _ = await running.result
    }

    @Test func historyRetentionDeletesOldTurnsAndKeepsTotals() async throws {
        let today = Date()
        let now = Mutex(today)
        let store = try SQLiteStore(now: { now.withLock { $0 } })
        let conversation = try await store.createConversation(kind: "telegram", externalID: 5)
        try await store.appendMessage(conversationID: conversation.id, role: .user, content: "old question")
        try await store.record(
            CallRecord(userMessageID: 1, reply: ("old answer", .complete, "m"), tokens: .init(prompt: 3, completion: 4, estimated: false), costUSD: 0.5, failed: false),
            conversationID: conversation.id)
        let maintenance = Maintenance(
            store: store, interval: .seconds(3600), updateRetention: .seconds(86_400), historyRetention: .seconds(30 * 86_400),
            clock: RecordingClock(), logger: try LogCapture().logger)
        now.withLock { $0 = today.addingTimeInterval(29 * 86_400) }
        await maintenance.runOnce()
        #expect(try await store.allMessages(conversationID: conversation.id).count == 2, "younger than 30 days: kept")
        now.withLock { $0 = today.addingTimeInterval(31 * 86_400) }
        await maintenance.runOnce()
        #expect(try await store.allMessages(conversationID: conversation.id).isEmpty)
        let totals = try #require(try await store.conversation(id: conversation.id))
        #expect(totals.requests == 1 && totals.completionTokens == 4 && totals.costUSD == 0.5)
    }

    @Test func theFileShrinksWhenRowsAreDeleted() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStore(path: directory.path + "/db.sqlite", durability: .normal)
        let conversation = try await store.createConversation(kind: "terminal")
        let long = String(repeating: "a long remembered answer ", count: 400)
        for _ in 0..<400 { try await store.appendMessage(conversationID: conversation.id, role: .user, content: long) }
        let full = try store.pageCount()
        try await store.clear(conversationID: conversation.id)
        await Maintenance(
            store: store, interval: .seconds(3600), updateRetention: .seconds(86_400), historyRetention: nil, clock: RecordingClock(),
            logger: try LogCapture().logger
        ).runOnce()
        #expect(try store.pageCount() < full / 10, "\(full) pages before")
    }

    /// A database made before incremental vacuum was on is switched over once, keeping its rows.
    @Test func anOlderDatabaseIsSwitchedToIncrementalVacuum() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/old.sqlite"
        do {
            let queue = try DatabaseQueue(path: path)
            try await queue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA auto_vacuum = NONE; CREATE TABLE keep (x); INSERT INTO keep VALUES (1);") }
            #expect(try await queue.read { try Int.fetchOne($0, sql: "PRAGMA auto_vacuum") } == 0)
        }
        _ = try SQLiteStore(path: path)
        let queue = try DatabaseQueue(path: path)
        #expect(try await queue.read { try Int.fetchOne($0, sql: "PRAGMA auto_vacuum") } == 2)
        #expect(try await queue.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM keep") } == 1)
    }
}
