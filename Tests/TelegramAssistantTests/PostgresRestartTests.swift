#if Cluster
import Foundation
import Testing
import TestSupport

@testable import AssistantStore
@testable import PostgresStore
@testable import TelegramAssistant

/// A real PostgreSQL restart under a running bot. It stops the server every other test uses, so
/// deploy/test.sh runs it on its own, after the rest, with `TEST_POSTGRES_CTL` set (pg_ctl for
/// the test server); without it this suite is skipped.
@Suite(.serialized, .timeLimit(.minutes(2)), .enabled(if: serverControl != nil, "needs TEST_POSTGRES_CTL (deploy/test.sh)"))
struct PostgresRestartTests {
    /// PostgreSQL stops while the bot runs. What arrives meanwhile stays unconfirmed at Telegram
    /// (the bot cannot store it), a store call fails with a clear error instead of hanging, and
    /// once the server is back the bot reconnects by itself and answers everything once.
    @Test func aDatabaseRestartLosesNothing() async throws {
        let fixture = StoreFixture(backend: .postgres)
        let store = try await fixture.open()
        let harness = try BotHarness(store: store)
        try await harness.withBot { _ in
            harness.telegram.deliverText("before", chatID: 901)
            try await harness.eventually("the first answer") { harness.texts(901).count == 1 }
            try await Self.server("stop -m fast")
            var stopped = true
            defer { if stopped { _ = system("\(serverControl ?? "false") start >/dev/null 2>&1") } }
            await #expect {
                try await store.conversation(kind: "telegram", externalID: 901)
            } throws: { error in
                "\(error)".contains("PostgreSQL") && !"\(error)".contains("SELECT")
            }
            harness.telegram.deliverText("during", chatID: 901)
            harness.telegram.deliverText("also during", chatID: 902)
            // The poller either fails to store what it polled, or stops first with the leader lock's
            // connection (only the leader polls), whichever it meets first.
            try await harness.eventually("a failed poll or the lost leader lock logged") {
                harness.log.records.contains {
                    ($0["msg"] as? String == "poll_failed" && $0["error_type"] as? String == "storage") || $0["msg"] as? String == "leadership_lost"
                }
            }
            #expect(harness.telegram.pendingUpdateCount == 2, "nothing confirmed while it cannot be stored")
            try await Self.server("start")
            stopped = false
            try await harness.eventually("both answered", timeout: .seconds(40)) { harness.texts(901).count == 2 && harness.texts(902).count == 1 }
            try await harness.eventually("the ledger closed") { await harness.store.openUpdatesCount == 0 }
        }
        #expect(harness.llm.chatRequests.count == 3, "each message was answered once")
    }

    /// Runs `pg_ctl COMMAND`, on a thread of its own. Through system(3): Foundation's Process waits
    /// for every descriptor it gave the child to close, and the server that `pg_ctl start` leaves
    /// running keeps one.
    static func server(_ command: String) async throws {
        let line = "\(try #require(serverControl)) \(command) >/dev/null 2>&1"
        let status = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: system(line)) }
        }
        #expect(status == 0, "pg_ctl \(command)")
    }
}

/// `pg_ctl -D …` for the test server.
private let serverControl = ProcessInfo.processInfo.environment["TEST_POSTGRES_CTL"].flatMap { $0.isEmpty ? nil : $0 }
#endif
