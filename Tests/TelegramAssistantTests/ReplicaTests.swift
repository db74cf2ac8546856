#if Cluster
import Foundation
import Logging
import Synchronization
import Testing
import TestSupport

@testable import AssistantStore
@testable import PostgresStore
@testable import TelegramAssistant
@testable import TelegramFrontEnd

/// Several replicas on one PostgreSQL (the Cluster build, on `TEST_DATABASE_URL`): one leads, the
/// others wait, and the next takes over when the leader stops or dies.
@Suite(.timeLimit(.minutes(2)), .enabled(if: StoreFixture.testDatabaseURL != nil, "needs TEST_DATABASE_URL (deploy/test.sh)"))
struct ReplicaTests {
    @Test func oneLeadsAndTheNextTakesOverWhenItLetsGo() async throws {
        let fixture = StoreFixture(backend: .postgres)
        _ = try await fixture.open()  // the schema
        let logger = try LogCapture().logger
        let first = try await PostgresLeadership.connect(try fixture.postgresLocation, logger: logger)
        let second = try await PostgresLeadership.connect(try fixture.postgresLocation, logger: logger)
        let other = try await PostgresLeadership.connect(try StoreFixture(backend: .postgres).postgresLocation, logger: logger)
        #expect(try await first.tryToLead())
        #expect(try await !second.tryToLead(), "one leader per database schema")
        #expect(try await other.tryToLead(), "another bot's schema has its own leader")
        await first.resign()
        try await second.waitToLead(every: .milliseconds(20))
        #expect(try await second.tryToLead(), "it leads now")
    }

    /// A replica that stands by in front of the leader; `body` runs while both are up.
    struct Pair {
        let fixture = StoreFixture(backend: .postgres)
        let telegram: FakeTelegramServer
        let llm: FakeOpenAIServer
        let first: BotHarness
        let second: BotHarness

        init() async throws {
            telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
            llm = try FakeOpenAIServer()
            let grace = ["SHUTDOWN_GRACE_SECONDS": "0"]
            first = try BotHarness(llmServer: llm, telegram: telegram, overrides: grace, store: try await fixture.open())
            second = try BotHarness(llmServer: llm, telegram: telegram, overrides: grace, store: try await fixture.open())
        }

        /// Runs `harness`'s bot as `run` does on PostgreSQL: only while it leads.
        func replica(_ harness: BotHarness) async throws -> Task<Void, any Error> {
            let leadership = try await PostgresLeadership.connect(try fixture.postgresLocation, logger: harness.log.logger)
            return Task {
                try await Replica.lead(leadership, logger: harness.log.logger, checkEvery: .milliseconds(50)) {
                    let bot = try await harness.connect()
                    try await bot.serviceGroup(logger: harness.log.logger).run()
                }
            }
        }
    }

    static func logged(_ harness: BotHarness, _ message: String) -> Bool {
        harness.log.records.contains { $0["msg"] as? String == message }
    }

    /// The leader stops between two messages: the standby takes over, polls from where the leader
    /// left off, and nothing is answered twice or lost; the two never poll at once.
    @Test func aStandbyTakesOverWhenTheLeaderStops() async throws {
        let pair = try await Pair()
        let (first, second, telegram) = (pair.first, pair.second, pair.telegram)
        let leader = try await pair.replica(first)
        try await first.eventually("the first leads") { Self.logged(first, "leading") }
        let standby = try await pair.replica(second)
        defer { standby.cancel() }
        try await second.eventually("the second stands by") { Self.logged(second, "standby") }
        telegram.deliverText("to the leader", chatID: 901)
        try await first.eventually("the leader's answer") { telegram.visibleMessages(chatID: 901).count == 1 }
        #expect(!Self.logged(second, "leading") && !Self.logged(second, "bot_started"), "the standby neither polls nor answers")
        leader.cancel()
        _ = await leader.result
        telegram.deliverText("to whoever leads", chatID: 902)
        try await second.eventually("the new leader's answer") { telegram.visibleMessages(chatID: 902).count == 1 }
        try await second.eventually("the ledger closed") { await second.store.openUpdatesCount == 0 }
        #expect(telegram.visibleMessages(chatID: 901).count == 1)
        #expect(pair.llm.chatRequests.count == 2)
        #expect(!Self.logged(first, "poll_conflict") && !Self.logged(second, "poll_conflict"), "never two pollers")
    }

    /// A rolling restart under load: the leader is stopped the way systemd stops it (a graceful
    /// shutdown) while it answers; it finishes what it started within the grace period, the standby
    /// takes over the rest, and every message is answered once, none cut off.
    @Test func aRollingRestartUnderLoadInterruptsNoAnswer() async throws {
        let fixture = StoreFixture(backend: .postgres)
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let llm = try FakeOpenAIServer()
        let answer = String(repeating: "A long answer streams in. ", count: 12)
        let first = try BotHarness(llmServer: llm, telegram: telegram, overrides: ["SHUTDOWN_GRACE_SECONDS": "30"], store: try await fixture.open())
        let second = try BotHarness(llmServer: llm, telegram: telegram, store: try await fixture.open())
        let firstLeadership = try await PostgresLeadership.connect(try fixture.postgresLocation, logger: first.log.logger)
        let firstBot = try await first.connect()
        let group = firstBot.serviceGroup(logger: first.log.logger)
        let leader = Task {
            try await Replica.lead(firstLeadership, logger: first.log.logger, checkEvery: .milliseconds(50)) { try await group.run() }
        }
        try await first.eventually("the first leads") { Self.logged(first, "leading") }
        let secondLeadership = try await PostgresLeadership.connect(try fixture.postgresLocation, logger: second.log.logger)
        let standby = Task {
            try await Replica.lead(secondLeadership, logger: second.log.logger, checkEvery: .milliseconds(50)) {
                try await second.connect().serviceGroup(logger: second.log.logger).run()
            }
        }
        defer { standby.cancel() }
        try await second.eventually("the second stands by") { Self.logged(second, "standby") }
        let early = (1...8).map { Int64(950 + $0) }
        let late = (1...8).map { Int64(970 + $0) }
        for _ in early + late { llm.enqueue(.paced(answer, charactersPerEvent: 8, every: .milliseconds(20))) }
        for chat in early { telegram.deliverText("early \(chat)", chatID: chat) }
        try await first.eventually("every early answer under way") { llm.chatRequests.count == early.count }
        await group.triggerGracefulShutdown()
        try await first.eventually("the leader stopped polling") { Self.logged(first, "shutting_down") }
        for chat in late { telegram.deliverText("late \(chat)", chatID: chat) }
        _ = try await leader.value
        try await second.eventually("the second leads") { Self.logged(second, "leading") }
        try await second.eventually("every answer") {
            (early + late).allSatisfy { telegram.visibleMessages(chatID: $0).map(\.text) == [answer.trimmingCharacters(in: .whitespaces)] }
        }
        try await second.eventually("the ledger closed") { await second.store.openUpdatesCount == 0 }
        #expect(llm.chatRequests.count == early.count + late.count, "each message asked once")
        #expect(first.replyRecords.count == early.count, "the leader finished what it started")
        #expect(second.replyRecords.count == late.count, "the new leader answered what came after")
        #expect(!Self.logged(first, "poll_conflict") && !Self.logged(second, "poll_conflict"))
    }

    /// Three replicas take a burst of 200 chats: every answer complete and sent once, no 429.
    @Test func threeReplicasTakeABurstOf200Chats() async throws {
        let fixture = StoreFixture(backend: .postgres)
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let llm = try FakeOpenAIServer()
        var harnesses: [BotHarness] = []
        for _ in 0..<3 { harnesses.append(try BotHarness(llmServer: llm, telegram: telegram, store: try await fixture.open())) }
        var replicas: [Task<Void, any Error>] = []
        for harness in harnesses {
            let harness = harness
            let leadership = try await PostgresLeadership.connect(try fixture.postgresLocation, logger: harness.log.logger)
            replicas.append(
                Task {
                    try await Replica.lead(leadership, logger: harness.log.logger, checkEvery: .milliseconds(50)) {
                        try await harness.connect().serviceGroup(logger: harness.log.logger).run()
                    }
                })
        }
        defer { replicas.forEach { $0.cancel() } }
        let all = harnesses
        try await all[0].eventually("one leads, two stand by") {
            all.filter { Self.logged($0, "leading") }.count == 1 && all.filter { Self.logged($0, "standby") }.count == 2
        }
        let chats = (1...200).map { Int64(20_000 + $0) }
        for chat in chats { telegram.deliverText("question \(chat)", chatID: chat) }
        try await all[0].eventually("every answer", timeout: .seconds(60)) {
            chats.allSatisfy { telegram.visibleMessages(chatID: $0).count == 1 }
        }
        try await all[0].eventually("every reply logged") { all.map(\.replyRecords.count).reduce(0, +) == 200 }
        #expect(llm.chatRequests.count == 200, "each asked once")
        #expect(telegram.tooManyRequests == 0)
        #expect(chats.allSatisfy { telegram.visibleMessages(chatID: $0).count == 1 }, "none answered twice")
        #expect(all.map(\.replyRecords.count).sorted() == [0, 0, 200])
    }

    /// The real binary, twice, on one database: the leader is killed (SIGKILL) in the middle of an
    /// answer. Its lock's session ends with it, the standby takes over and, as after a restart,
    /// tells the user the answer was cut off; nothing is asked or answered twice, the ledger closes.
    @Test(.enabled(if: CrashRecoveryTests.binary != nil, "needs the built binary"))
    func aStandbyTakesOverFromAKilledLeader() async throws {
        let fixture = StoreFixture(backend: .postgres)
        let observer = try await fixture.open()
        let (llm, telegram) = (try FakeOpenAIServer(), try FakeTelegramServer())
        let directory = TemporaryDirectory()
        var environment = CrashRecoveryTests.environment(llm, telegram, database: "")
        environment["DATABASE_PATH"] = nil
        environment["DATABASE_URL"] = StoreFixture.testDatabaseURL! + "&schema=\(fixture.schema)"
        func replica(_ name: String) throws -> CrashRecoveryTests.Bot {
            var mine = environment
            mine["LOG_FILE"] = directory.path + "/\(name).log"
            return try CrashRecoveryTests.Bot(binary: try #require(CrashRecoveryTests.binary), environment: mine)
        }
        func log(_ name: String) -> String { (try? String(contentsOfFile: directory.path + "/\(name).log", encoding: .utf8)) ?? "" }
        let harness = try BotHarness(llmServer: llm, telegram: telegram)  // for `eventually`
        llm.enqueue(.stall(after: "The beginning of an answer"))
        let leader = try replica("first")
        try await harness.eventually("the first leads") { log("first").contains(#""msg":"leading""#) }
        let standby = try replica("second")
        try await harness.eventually("the second stands by") { log("second").contains(#""msg":"standby""#) }
        telegram.deliverText("a question", chatID: 904)
        try await harness.eventually("the answer under way") { !telegram.calls("sendMessageDraft").isEmpty }
        leader.kill()
        try await harness.eventually("the second leads") { log("second").contains(#""msg":"leading""#) }
        try await harness.eventually("the notice") {
            telegram.visibleMessages(chatID: 904).map(\.text) == ["I was restarted while answering your message. Please send it again."]
        }
        try await harness.eventually("the ledger closed") { await observer.openUpdatesCount == 0 }
        #expect(llm.chatRequests.count == 1, "the question was not asked again")
        llm.enqueue(.answer("The next answer."))
        telegram.deliverText("and the next one", chatID: 904)
        try await harness.eventually("the next answer") { telegram.visibleMessages(chatID: 904).last?.text == "The next answer." }
        #expect(telegram.visibleMessages(chatID: 904).count == 2)
        #expect(!log("second").contains("poll_conflict"))
        #expect(try await standby.terminate() == 0)
    }
}
#endif
