import Foundation
import Support
import Synchronization
import Testing
import TestSupport

@testable import AssistantStore
#if Cluster
    import PostgresNIO
    @testable import PostgresStore
#endif

/// A database both backends can open, again and again (a restart, or a second replica).
struct StoreFixture: Sendable, CustomTestStringConvertible {
    enum Backend: String, Sendable { case sqlite, postgres }

    let backend: Backend
    private let directory = TemporaryDirectory()
    /// For PostgreSQL: a schema of its own in the test database.
    let schema = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)

    var testDescription: String { backend.rawValue }

    /// SQLite always; PostgreSQL in the Cluster build, on `TEST_DATABASE_URL` (deploy/test.sh sets it).
    static var all: [StoreFixture] {
        var fixtures = [StoreFixture(backend: .sqlite)]
        #if Cluster
            if testDatabaseURL != nil { fixtures.append(StoreFixture(backend: .postgres)) }
        #endif
        return fixtures
    }

    static var testDatabaseURL: String? { ProcessInfo.processInfo.environment["TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    /// The test database with this fixture's schema.
    var postgresLocation: PostgresLocation {
        get throws {
            var location = try PostgresLocation(url: try #require(Self.testDatabaseURL))
            location.schema = schema
            return location
        }
    }

    func open(now: @escaping @Sendable () -> Date = { Date() }) async throws -> any Store {
        switch backend {
        case .sqlite:
            return try SQLiteStore(path: directory.path + "/assistant.sqlite", durability: .normal, now: now)
        case .postgres:
            #if Cluster
                return try await PostgresStore.open(try postgresLocation, now: now, logger: try LogCapture().logger)
            #else
                throw StoreError(description: "PostgreSQL needs the Cluster build")
            #endif
        }
    }
}

/// The storage API's rules, run against every backend: SQLite always, PostgreSQL in the Cluster build.
@Suite(.timeLimit(.minutes(2))) struct StoreContractTests {
    #if Cluster
        @Test func theClusterBuildTestsPostgreSQL() {
            #expect(StoreFixture.testDatabaseURL != nil, "set TEST_DATABASE_URL, or run deploy/test.sh, which starts a throw-away PostgreSQL")
        }

        /// Each way PostgreSQL can refuse at start gets its own message, without the password.
        @Test(.enabled(if: StoreFixture.testDatabaseURL != nil)) func postgresStartFailuresSayWhatToFix() async throws {
            let base = try StoreFixture(backend: .postgres).postgresLocation
            let logger = try LogCapture().logger
            let cases: [(change: @Sendable (inout PostgresLocation) -> Void, says: String)] = [
                ({ $0.database = "no_such_database" }, "does not exist: create it (createdb) or fix DATABASE_URL"),
                ({ $0.user = "nobody" }, "PostgreSQL refused the user of postgres://nobody@"),
                ({ $0.port = 1 }, "cannot reach the PostgreSQL server of postgres://"),
                ({ $0.tls = .require }, "does not offer TLS, which sslmode=require requires"),
            ]
            for (change, says) in cases {
                var location = base
                location.password = "secret-password"
                change(&location)
                await #expect {
                    try await PostgresStore.open(location, logger: logger)
                } throws: { error in
                    "\(error)".contains(says) && !"\(error)".contains("secret-password")
                }
            }
        }

        /// A server that goes silent in the middle of a call (its host vanished behind a firewall,
        /// or it hangs): the call fails once the store's answer limit has passed, instead of
        /// holding its caller, and with it a shutdown, for ever. Once the server answers again, the
        /// next call works, on a new connection.
        @Test(.enabled(if: StoreFixture.testDatabaseURL != nil)) func aServerThatGoesSilentFailsTheCallInsteadOfHangingIt() async throws {
            var location = try StoreFixture(backend: .postgres).postgresLocation
            let relay = try TCPRelay(to: location.port)
            defer { relay.stop() }
            (location.host, location.port) = ("127.0.0.1", relay.port)
            let store = try await PostgresStore.open(location, answerTimeout: .seconds(1), logger: try LogCapture().logger)
            defer { store.close() }
            let conversation = try await store.conversation(kind: "telegram", externalID: 7)
            relay.silence()
            // Bounded here too, so that a call that hangs fails this test instead of the whole run.
            await #expect {
                try await abandoning(after: .seconds(30)) { try await store.conversation(kind: "telegram", externalID: 7) }
            } throws: { error in
                "\(error)".contains("did not answer within 1.0 seconds")
            }
            relay.speak()
            let again = try await abandoning(after: .seconds(30)) { try await store.conversation(kind: "telegram", externalID: 7) }
            #expect(again.id == conversation.id)
        }

        /// A burst queues for the pool's connections longer than the lease timeout while the server
        /// serves all along: every call waits its turn. Before, the calls at the back of the queue
        /// failed as if the server were unreachable, and a webhook burst on a loaded host had posts
        /// answered 500.
        @Test(.enabled(if: StoreFixture.testDatabaseURL != nil)) func callsQueueForABusyPoolInsteadOfFailing() async throws {
            let store = try await PostgresStore.open(
                try StoreFixture(backend: .postgres).postgresLocation, maximumConnections: 1, leaseTimeout: .milliseconds(300),
                logger: try LogCapture().logger)
            defer { store.close() }
            // Eight calls of 100 ms each on one connection: the last waits 700 ms for it.
            let failures = try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        do {
                            _ = try await store.run("SELECT pg_sleep(0.1)")
                            return nil
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { failures, failure in failure.map { failures.append($0) } }
            }
            #expect(failures.isEmpty, "\(failures)")
        }

        /// The listener that wakes a replica's claimer when updates are saved: when its server goes
        /// silent, it notices (its check gets no answer), says so once, and once the server answers
        /// again it listens on a new connection and wakes the claimer as before.
        @Test(.enabled(if: StoreFixture.testDatabaseURL != nil)) func theUpdateListenerComesBackAfterItsServerWentSilent() async throws {
            let fixture = StoreFixture(backend: .postgres)
            var location = try fixture.postgresLocation
            let relay = try TCPRelay(to: location.port)
            defer { relay.stop() }
            (location.host, location.port) = ("127.0.0.1", relay.port)
            let log = try LogCapture()
            let listener = try await PostgresStore.open(location, logger: log.logger)
            defer { listener.close() }
            let saver = try await PostgresStore.open(try fixture.postgresLocation, logger: log.logger)
            defer { saver.close() }
            let wakes = Mutex(0)
            let counting = Task { for await _ in listener.updatesSaved() { wakes.withLock { $0 += 1 } } }
            defer { counting.cancel() }
            let listening = { @Sendable (after: Date) async -> Bool in
                // The listener's connection, idle after its LISTEN, opened after `after`.
                let rows = try? await saver.listenersSince(after)
                return (rows ?? 0) > 0
            }
            let start = Date()
            try await waitUntil("listening") { await listening(start) }
            var before = wakes.withLock { $0 }
            _ = try await saver.saveReceived([UpdateRow(id: 1, chatID: 1, payload: "{}")], nextOffset: 2)
            try await waitUntil("woken by the save") { wakes.withLock { $0 } > before }

            relay.silence()
            try await waitUntil("the silence noticed", timeout: .seconds(60)) { !log.records(containing: "listen_failed").isEmpty }
            let spoke = Date()
            relay.speak()
            try await waitUntil("listening again", timeout: .seconds(60)) { await listening(spoke) }
            before = wakes.withLock { $0 }
            _ = try await saver.saveReceived([UpdateRow(id: 2, chatID: 1, payload: "{}")], nextOffset: 3)
            try await waitUntil("woken by the next save") { wakes.withLock { $0 } > before }
            #expect(log.records(containing: "listen_failed").count == 1, "said once per outage")
        }

        /// A server that accepts the connection and then says nothing: the start fails with a clear
        /// error instead of waiting for ever.
        @Test(.enabled(if: StoreFixture.testDatabaseURL != nil)) func aSilentServerAtStartIsAClearError() async throws {
            var location = try StoreFixture(backend: .postgres).postgresLocation
            let relay = try TCPRelay(to: location.port)
            defer { relay.stop() }
            relay.silence()
            (location.host, location.port) = ("127.0.0.1", relay.port)
            let (silent, logger) = (location, try LogCapture().logger)
            await #expect {
                try await abandoning(after: .seconds(60)) { try await PostgresStore.open(silent, logger: logger) }
            } throws: { error in
                "\(error)".contains("cannot reach the PostgreSQL server")
            }
        }
    #endif

    @Test(arguments: StoreFixture.all) func migratesOnceAndKeepsEverythingAcrossReopening(_ fixture: StoreFixture) async throws {
        let conversationID: Int64
        do {
            let store = try await fixture.open()
            #expect(try await store.appliedMigrations() == ["v1: conversations and messages", "v2: telegram updates", "v3: pending replies", "v4: attachments", "v5: replicas and chat leases"])
            let conversation = try await store.createConversation(kind: "terminal")
            conversationID = conversation.id
            let user = try await store.appendMessage(conversationID: conversation.id, role: .user, content: "remember 42 🦊")
            try await store.record(
                CallRecord(
                    userMessageID: user.id, reply: ("42 noted", .complete, "m"), tokens: .init(prompt: 10, completion: 3, estimated: false),
                    costUSD: 0.000013, latencyMs: 120, ttftMs: 40, failed: false),
                conversationID: conversation.id)
        }
        let reopened = try await fixture.open()
        #expect(try await reopened.appliedMigrations().count == 5)
        let messages = try await reopened.contextMessages(conversationID: conversationID)
        #expect(messages.map(\.content) == ["remember 42 🦊", "42 noted"])
        #expect(messages.map(\.role) == [.user, .assistant])
        #expect(messages.last?.model == "m" && messages.last?.promptTokens == 10 && messages.last?.completionTokens == 3)
        let conversation = try #require(try await reopened.conversation(id: conversationID))
        #expect(conversation.requests == 1 && conversation.promptTokens == 10 && conversation.completionTokens == 3)
        #expect(abs(conversation.costUSD - 0.000013) < 1e-12)
        #expect(conversation.lastLatencyMs == 120 && conversation.lastTTFTMs == 40 && !conversation.usageEstimated)
        #expect(try await reopened.latestConversation(kind: "terminal")?.id == conversationID)
        #expect(try await reopened.conversation(id: conversationID + 1000) == nil)
    }

    /// A turn and an outcome that need not be durable are committed all the same: another
    /// connection (a reopened store) sees them at once.
    @Test(arguments: StoreFixture.all) func commitsThatNeedNotBeDurableAreCommittedAllTheSame(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        let conversation = try await store.conversation(kind: "telegram", externalID: 77)
        let user = try await store.appendMessage(conversationID: conversation.id, role: .user, content: "quick", durable: false)
        try await store.record(
            CallRecord(userMessageID: user.id, reply: ("answer", .complete, "m"), tokens: nil, costUSD: 0, failed: false),
            conversationID: conversation.id, durable: false)
        let reopened = try await fixture.open()
        #expect(try await reopened.conversation(kind: "telegram", externalID: 77).id == conversation.id)
        #expect(try await reopened.contextMessages(conversationID: conversation.id).map(\.content) == ["quick", "answer"])
    }

    @Test(arguments: StoreFixture.all) func aFailedCallMarksTheTurnFailedUnlessItKeepsIt(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        let conversation = try await store.createConversation(kind: "terminal")
        let lost = try await store.appendMessage(conversationID: conversation.id, role: .user, content: "lost")
        try await store.record(CallRecord(userMessageID: lost.id, reply: nil, tokens: nil, costUSD: 0, failed: true), conversationID: conversation.id)
        let kept = try await store.appendMessage(conversationID: conversation.id, role: .user, content: "kept")
        try await store.record(
            CallRecord(userMessageID: kept.id, reply: nil, tokens: nil, costUSD: 0, failed: true, keepsTurn: true), conversationID: conversation.id)
        #expect(try await store.contextMessages(conversationID: conversation.id).map(\.content) == ["kept"])
        #expect(try await store.allMessages(conversationID: conversation.id).map(\.status) == [.failed, .complete])
        #expect(try await store.messageCount(conversationID: conversation.id) == 1)
        let totals = try #require(try await store.conversation(id: conversation.id))
        #expect(totals.requests == 2 && totals.failures == 2)
    }

    @Test(arguments: StoreFixture.all) func clearForgetsHistoryButKeepsTotals(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        let conversation = try await store.createConversation(kind: "terminal")
        let user = try await store.appendMessage(conversationID: conversation.id, role: .user, content: "hi")
        try await store.record(
            CallRecord(userMessageID: user.id, reply: ("hello", .complete, "m"), tokens: .init(prompt: 5, completion: 1, estimated: true), costUSD: 0, failed: false),
            conversationID: conversation.id)
        try await store.setSummary("s", throughMessageID: user.id, conversationID: conversation.id)
        try await store.setWindowStart(user.id, conversationID: conversation.id)
        try await store.setModel("other", conversationID: conversation.id)
        let before = try #require(try await store.conversation(id: conversation.id))
        #expect(before.summary == "s" && before.summaryThroughMessageID == user.id && before.windowStartMessageID == user.id && before.model == "other")
        try await store.clear(conversationID: conversation.id)
        #expect(try await store.messageCount(conversationID: conversation.id) == 0)
        let after = try #require(try await store.conversation(id: conversation.id))
        #expect(after.summary == nil && after.summaryThroughMessageID == 0 && after.windowStartMessageID == 0)
        #expect(after.requests == 1 && after.usageEstimated && after.model == "other")
        try await store.setModel(nil, conversationID: conversation.id)
        #expect(try await store.conversation(id: conversation.id)?.model == nil)
    }

    /// Two replicas meeting a new chat at the same moment get one conversation.
    @Test(arguments: StoreFixture.all) func aChatHasOneConversationEvenWhenTwoAskAtOnce(_ fixture: StoreFixture) async throws {
        let first = try await fixture.open()
        let second = fixture.backend == .postgres ? try await fixture.open() : first
        let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
            for index in 0..<8 {
                group.addTask { try await (index.isMultiple(of: 2) ? first : second).conversation(kind: "telegram", externalID: -100123).id }
            }
            return try await group.reduce(into: Set<Int64>()) { $0.insert($1) }
        }
        #expect(ids.count == 1)
        let other = try await first.conversation(kind: "telegram", externalID: 42)
        #expect(!ids.contains(other.id))
        #expect(other.kind == "telegram" && other.externalID == 42)
    }

    @Test(arguments: StoreFixture.all) func aMovedChatKeepsItsHistoryUnlessTheNewIDHasOne(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        let group = try await store.conversation(kind: "telegram", externalID: -5)
        try await store.appendMessage(conversationID: group.id, role: .user, content: "before the upgrade")
        try await store.moveConversation(kind: "telegram", from: -5, to: -1005)
        #expect(try await store.conversation(kind: "telegram", externalID: -1005).id == group.id)
        let taken = try await store.conversation(kind: "telegram", externalID: -7)
        let target = try await store.conversation(kind: "telegram", externalID: -1007)
        try await store.moveConversation(kind: "telegram", from: -7, to: -1007)
        #expect(try await store.conversation(kind: "telegram", externalID: -7).id == taken.id)
        #expect(try await store.conversation(kind: "telegram", externalID: -1007).id == target.id)
    }

    @Test(arguments: StoreFixture.all) func totalsAddUpEveryConversationOfAKind(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        #expect(try await store.totals(kind: "telegram") == ConversationTotals(conversations: 0, requests: 0, promptTokens: 0, completionTokens: 0, costUSD: 0))
        for chat in [1, 2] as [Int64] {
            let conversation = try await store.conversation(kind: "telegram", externalID: chat)
            let image = Attachment(kind: .image, mimeType: "image/png", data: [1], width: 1, height: 1)
            let voice = Attachment(kind: .audio, mimeType: "audio/ogg", seconds: 7, transcript: "spoken")
            let turn = try await store.appendMessage(
                conversationID: conversation.id, role: .user, content: "q", attachments: [image, voice], inputCostUSD: 0.25)
            try await store.record(
                CallRecord(userMessageID: turn.id, reply: ("a", .complete, "m"), tokens: .init(prompt: 10, completion: 2, estimated: false), costUSD: 0.5, failed: false),
                conversationID: conversation.id)
        }
        _ = try await store.createConversation(kind: "terminal")
        let totals = try await store.totals(kind: "telegram")
        #expect(totals == ConversationTotals(conversations: 2, requests: 2, promptTokens: 20, completionTokens: 4, costUSD: 1.5, images: 2, audioSeconds: 14))
    }

    /// An image is stored once with its turn, read back with the window, and goes when its turn goes.
    @Test(arguments: StoreFixture.all) func attachmentsLiveAndDieWithTheirTurn(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        let conversation = try await store.createConversation(kind: "terminal")
        let bytes = (0..<300).map { UInt8($0 % 256) }
        let image = Attachment(kind: .image, mimeType: "image/png", data: bytes, width: 2, height: 1, sourceID: "u1")
        let turn = try await store.appendMessage(conversationID: conversation.id, role: .user, content: "look", attachments: [image])
        let context = try #require(try await store.context(conversationID: conversation.id))
        #expect(context.attachments[turn.id] == [image])
        #expect(try await store.attachment(sourceID: "u1", conversationID: conversation.id)?.turn == "look")
        #expect(try await store.attachment(sourceID: "u1", conversationID: conversation.id)?.attachment == image)
        #expect(try await store.attachment(sourceID: "u1", conversationID: conversation.id + 1) == nil, "never from another chat")
        try await store.withholdImages(conversationID: conversation.id)
        #expect(try await store.context(conversationID: conversation.id)?.attachments[turn.id]?.first?.withheld == true)
        try await store.clear(conversationID: conversation.id)
        #expect(try await store.attachment(sourceID: "u1", conversationID: conversation.id) == nil)
        #expect(try await store.conversation(id: conversation.id)?.images == 1, "the count stays with the totals")
    }

    /// The window: failed turns and turns before its start stay out; a turn can move it in its own commit.
    @Test(arguments: StoreFixture.all) func theContextIsTheWindowWithoutFailedTurns(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        let conversation = try await store.createConversation(kind: "terminal")
        var ids: [Int64] = []
        for index in 0..<5 { ids.append(try await store.appendMessage(conversationID: conversation.id, role: .user, content: "t\(index)").id) }
        try await store.record(CallRecord(userMessageID: ids[3], reply: nil, tokens: nil, costUSD: 0, failed: true), conversationID: conversation.id)
        try await store.setWindowStart(ids[1], conversationID: conversation.id)
        #expect(try await store.context(conversationID: conversation.id)?.turns.map(\.content) == ["t1", "t2", "t4"])
        #expect(try await store.messages(conversationID: conversation.id, after: ids[0], before: ids[4]).map(\.content) == ["t1", "t2"])
        let moved = try await store.appendMessage(conversationID: conversation.id, role: .user, content: "t5", moveWindow: .toNewTurn)
        #expect(try await store.context(conversationID: conversation.id)?.turns.map(\.id) == [moved.id])
        try await store.appendMessage(conversationID: conversation.id, role: .user, content: "t6", moveWindow: .to(ids[4]))
        #expect(try await store.context(conversationID: conversation.id)?.turns.map(\.content) == ["t4", "t5", "t6"])
        #expect(try await store.context(conversationID: conversation.id + 1000) == nil)
    }

    /// Text the database cannot hold as it is (NUL) keeps the rest, with a visible mark.
    @Test(arguments: StoreFixture.all) func textWithNULIsKeptWithAMark(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        let conversation = try await store.createConversation(kind: "terminal")
        try await store.appendMessage(conversationID: conversation.id, role: .user, content: "a\u{0}b 😀 ’")
        #expect(try await store.allMessages(conversationID: conversation.id).map(\.content) == ["a\u{FFFD}b 😀 ’"])
    }

    /// The ledger: an update is new once; one sent again unchanged is not; one with the same id
    /// and other content (Telegram restarted its ids) is.
    @Test(arguments: StoreFixture.all) func theLedgerSavesEachUpdateOnceAndFollowsTheOffset(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        #expect(try await store.updateOffset() == nil)
        let a = UpdateRow(id: 10, chatID: 1, payload: "{\"a\":1}")
        let b = UpdateRow(id: 11, chatID: nil, payload: "{\"b\":1}")
        #expect(try await store.saveReceived([a, b]) == [a, b])
        #expect(try await store.updateOffset() == 12)
        #expect(try await store.saveReceived([a, b]).isEmpty, "sent again before it was confirmed")
        let restarted = UpdateRow(id: 10, chatID: 2, payload: "{\"a\":2}")
        #expect(try await store.saveReceived([restarted], nextOffset: 11) == [restarted])
        #expect(try await store.updateOffset() == 11, "the offset follows Telegram's ids down too")
        #expect(try await store.openUpdates().map(\.update) == [restarted, b])
        #expect(try await store.openUpdates().map(\.status) == [.received, .received])
        #expect(try await store.saveReceived([]).isEmpty)
    }

    @Test(arguments: StoreFixture.all) func aPendingReplyIsKeptUntilTheUpdateIsHandled(_ fixture: StoreFixture) async throws {
        let clock = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        let store = try await fixture.open(now: { clock.withLock { $0 } })
        _ = try await store.saveReceived([UpdateRow(id: 1, chatID: 5, payload: "{}"), UpdateRow(id: 2, chatID: 5, payload: "{}")])
        try await store.savePendingReply(PendingReply(payload: "[\"part\"]", partsSent: 0, streamMessage: (messageID: 77, part: 1)), updateID: 1)
        try await store.setReplyPartsSent(2, updateID: 1)
        try await store.setReplyPartsSent(1, updateID: 1)
        let open = try await store.openUpdates()
        #expect(open.map(\.status) == [.answering, .received])
        let pending = try #require(open.first?.pendingReply)
        #expect(pending.payload == "[\"part\"]" && pending.partsSent == 2, "parts sent never go down")
        #expect(pending.streamMessage?.messageID == 77 && pending.streamMessage?.part == 1)
        try await store.setUpdateStatus([1, 2], .handled)
        #expect(try await store.openUpdates().isEmpty)
        clock.withLock { $0 = $0.addingTimeInterval(3_600) }
        #expect(try await store.pruneHandledUpdates(olderThan: 7_200) == 0, "younger than the retention")
        clock.withLock { $0 = $0.addingTimeInterval(86_400) }
        #expect(try await store.pruneHandledUpdates() == 2)
        #expect(try await store.saveReceived([UpdateRow(id: 1, chatID: 5, payload: "{}")]).count == 1, "a pruned update is forgotten")
        #expect(try await store.openUpdates().first?.pendingReply == nil)
    }

    /// A turn and its update's status change commit together.
    @Test(arguments: StoreFixture.all) func aTurnCommitsWithItsUpdatesStatus(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        _ = try await store.saveReceived([UpdateRow(id: 7, chatID: 5, payload: "{}"), UpdateRow(id: 8, chatID: 5, payload: "{}")])
        let conversation = try await store.conversation(kind: "telegram", externalID: 5)
        try await store.appendMessage(
            conversationID: conversation.id, role: .user, content: "album",
            alongWith: [UpdateStatusChange(updateID: 7, status: .answering), UpdateStatusChange(updateID: 8, status: .answering)])
        #expect(try await store.openUpdates().map(\.status) == [.answering, .answering])
        // A failing turn (no such conversation) leaves the statuses as they were.
        await #expect(throws: (any Error).self) {
            try await store.appendMessage(
                conversationID: conversation.id + 1000, role: .user, content: "x", alongWith: [UpdateStatusChange(updateID: 7, status: .handled)])
        }
        #expect(try await store.openUpdates().count == 2)
    }

    /// An update starts being answered once: whoever comes second (another replica whose lease
    /// lapsed) is told so, and nothing of its turn is written.
    @Test(arguments: StoreFixture.all) func anUpdateStartsBeingAnsweredOnce(_ fixture: StoreFixture) async throws {
        let first = try await fixture.open()
        let second = try await fixture.open()
        _ = try await first.saveReceived([UpdateRow(id: 7, chatID: 5, payload: "{}"), UpdateRow(id: 8, chatID: 5, payload: "{}")])
        let conversation = try await first.conversation(kind: "telegram", externalID: 5)
        let answering = [UpdateStatusChange(updateID: 7, status: .answering)]
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for store in [first, second] {
                group.addTask {
                    do {
                        try await store.appendMessage(conversationID: conversation.id, role: .user, content: "question", alongWith: answering)
                        return true
                    } catch let error as StoreError {
                        return !error.isUpdateTaken
                    } catch {
                        return true
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.sorted { !$0 && $1 } == [false, true], "one answers, the other is told the update is taken")
        #expect(try await first.messageCount(conversationID: conversation.id) == 1, "the second turn was not written")
        try await first.setUpdateStatus([7], .handled)
        await #expect(throws: StoreError.self) {
            try await second.appendMessage(conversationID: conversation.id, role: .user, content: "again", alongWith: answering)
        }
        // Album parts move together or not at all.
        await #expect(throws: StoreError.self) {
            try await second.appendMessage(
                conversationID: conversation.id, role: .user, content: "album",
                alongWith: [UpdateStatusChange(updateID: 8, status: .answering), UpdateStatusChange(updateID: 7, status: .answering)])
        }
        #expect(try await first.openUpdates().map(\.status) == [.received], "update 8 is still waiting")
        #expect(try await first.messageCount(conversationID: conversation.id) == 1)
    }

    @Test(arguments: StoreFixture.all) func retentionForgetsOldTurnsAndKeepsTotals(_ fixture: StoreFixture) async throws {
        let today = Date(timeIntervalSince1970: 1_800_000_000)
        let clock = Mutex(today)
        let store = try await fixture.open(now: { clock.withLock { $0 } })
        let conversation = try await store.conversation(kind: "telegram", externalID: 5)
        let old = try await store.appendMessage(conversationID: conversation.id, role: .user, content: "old question")
        try await store.record(
            CallRecord(userMessageID: old.id, reply: ("old answer", .complete, "m"), tokens: .init(prompt: 3, completion: 4, estimated: false), costUSD: 0.5, failed: false),
            conversationID: conversation.id)
        clock.withLock { $0 = today.addingTimeInterval(29 * 86_400) }
        try await store.appendMessage(conversationID: conversation.id, role: .user, content: "new")
        #expect(try await store.deleteMessages(olderThan: 30 * 86_400) == 0)
        clock.withLock { $0 = today.addingTimeInterval(31 * 86_400) }
        #expect(try await store.deleteMessages(olderThan: 30 * 86_400) == 2)
        #expect(try await store.allMessages(conversationID: conversation.id).map(\.content) == ["new"])
        try await store.compact()
        let totals = try #require(try await store.conversation(id: conversation.id))
        #expect(totals.requests == 1 && totals.completionTokens == 4 && totals.costUSD == 0.5)
    }

    /// A reply stopped by its user is still saved: a write is not cancelled with its task.
    @Test(arguments: StoreFixture.all) func aWriteFromACancelledTaskStillCommits(_ fixture: StoreFixture) async throws {
        let store = try await fixture.open()
        let conversation = try await store.createConversation(kind: "terminal")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await store.appendMessage(conversationID: conversation.id, role: .assistant, content: "stopped", status: .partial)
        }
        #expect(try await task.value.status == .partial)
        #expect(try await store.allMessages(conversationID: conversation.id).map(\.content) == ["stopped"])
    }
}

#if Cluster
    extension PostgresStore {
        /// Connections of this database opened after `date` that last ran the update listener's
        /// LISTEN or its check.
        func listenersSince(_ date: Date) async throws -> Int {
            try await run(
                """
                SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_start > \(date)
                AND (query LIKE 'LISTEN%' OR query = 'SELECT 1 AS alive')
                """
            ).first.map { try $0["n"].decode(Int.self) } ?? 0
        }
    }
#endif
