#if Cluster
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

@testable import AssistantStore
@testable import ClusterServer
@testable import PostgresStore
@testable import TelegramAssistant
@testable import TelegramFrontEnd

/// Several replicas on one PostgreSQL (the Cluster build, on `TEST_DATABASE_URL`): every replica
/// answers the chats it leases, one polls at a time, and a replica that stops or dies hands its
/// chats on.
@Suite(.timeLimit(.minutes(3)), .enabled(if: StoreFixture.testDatabaseURL != nil, "needs TEST_DATABASE_URL (deploy/test.sh)"))
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

    static func rows(_ chats: ClosedRange<Int64>, firstID: Int64) -> [UpdateRow] {
        chats.enumerated().map { index, chat in UpdateRow(id: firstID + Int64(index), chatID: chat, payload: "{\"chat\":\(chat)}") }
    }

    /// The leases' rules on the real database: a chat goes to one live replica, each takes its
    /// share, a chat with open updates is not given back, and a replica whose heartbeat expired
    /// loses its chats.
    @Test func aChatIsLeasedToOneLiveReplicaAtATime() async throws {
        let store = try #require(try await StoreFixture(backend: .postgres).open() as? PostgresStore)
        _ = try await store.saveReceived(Self.rows(1...6, firstID: 100))
        #expect(try await store.heartbeat(replica: "a", timeout: .seconds(30)) == 1)
        #expect(try await store.heartbeat(replica: "b", timeout: .seconds(30)) == 2)
        let a = try await store.claimChats(replica: "a", replicas: 2)
        #expect(a.chats == [1, 2, 3], "its share of six open chats, oldest first")
        #expect(a.updates.map(\.update.id) == [100, 101, 102])
        let b = try await store.claimChats(replica: "b", replicas: 2)
        #expect(b.chats == [4, 5, 6])
        #expect(try await store.claimChats(replica: "a", replicas: 2) == a, "nothing more: every chat is held")

        try await store.setUpdateStatus([100], .handled)
        #expect(try await store.claimChats(replica: "a", replicas: 2).chats == [2, 3], "nothing open: given back at the next claim")
        #expect(try await store.claimChats(replica: "b", replicas: 2).chats == [4, 5, 6], "its share is full")
        _ = try await store.saveReceived(Self.rows(1...1, firstID: 200))
        #expect(try await store.claimChats(replica: "b", replicas: 2).chats == [4, 5, 6], "its share is full")
        #expect(try await store.claimChats(replica: "a", replicas: 2).chats == [1, 2, 3], "the chat came back")

        // b stops its heartbeat (expired now): a takes its chats, under the same rules as a restart.
        #expect(try await store.heartbeat(replica: "b", timeout: .zero) == 1)
        try await store.setUpdateStatus([103], .answering)
        let taken = try await store.claimChats(replica: "a", replicas: 1)
        #expect(taken.chats == [1, 2, 3, 4, 5, 6])
        #expect(taken.updates.first { $0.update.id == 103 }?.status == .answering, "cut off mid-reply: resumed as such")
        #expect(try await store.claimChats(replica: "b", replicas: 1).chats.isEmpty, "b, back, finds them taken")

        try await store.leave(replica: "a")
        #expect(try await store.heartbeat(replica: "b", timeout: .seconds(30)) == 1, "a left")
        #expect(try await store.claimChats(replica: "b", replicas: 1).chats == [1, 2, 3, 4, 5, 6])
    }

    /// Three replicas claim 150 chats at the same moment: every chat goes to exactly one.
    @Test func claimsAtTheSameMomentNeverShareAChat() async throws {
        let fixture = StoreFixture(backend: .postgres)
        let stores = [
            try #require(try await fixture.open() as? PostgresStore), try #require(try await fixture.open() as? PostgresStore),
            try #require(try await fixture.open() as? PostgresStore),
        ]
        _ = try await stores[0].saveReceived(Self.rows(1...150, firstID: 1))
        for (index, store) in stores.enumerated() { _ = try await store.heartbeat(replica: "r\(index)", timeout: .seconds(30)) }
        let claims = try await withThrowingTaskGroup(of: Set<Int64>.self) { group in
            for (index, store) in stores.enumerated() {
                group.addTask {
                    var held = Set<Int64>()
                    for _ in 0..<5 { held = try await store.claimChats(replica: "r\(index)", replicas: 3).chats }
                    return held
                }
            }
            return try await group.reduce(into: [Set<Int64>]()) { $0.append($1) }
        }
        #expect(claims.map(\.count).reduce(0, +) == 150, "no chat held twice")
        #expect(claims.reduce(Set<Int64>()) { $0.union($1) } == Set(1...150))
        #expect(claims.allSatisfy { $0.count == 50 }, "each its share")
    }

    /// Replicas of one bot on one database, each run as `run` runs it (its own harness and log).
    struct Replicas {
        let fixture = StoreFixture(backend: .postgres)
        let telegram: FakeTelegramServer
        let llm: FakeOpenAIServer

        init() throws {
            telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
            llm = try FakeOpenAIServer()
        }

        func harness(_ overrides: [String: String] = [:]) async throws -> BotHarness {
            try BotHarness(llmServer: llm, telegram: telegram, overrides: overrides, store: try await fixture.open())
        }

        /// A running replica: its service group, stopped gracefully or cancelled by the test.
        struct Running {
            let harness: BotHarness
            let group: ServiceGroup
            let task: Task<Void, any Error>
            var bot: TelegramBot?

            func stop() async throws {
                await group.triggerGracefulShutdown()
                try await task.value
            }
        }

        func start(_ harness: BotHarness, alongWith extra: (TelegramBot) throws -> [any Service] = { _ in [] }) async throws -> Running {
            let bot = try await harness.connect()
            let group = bot.serviceGroup(logger: harness.log.logger, alongWith: try extra(bot))
            return Running(harness: harness, group: group, task: Task { try await group.run() }, bot: bot)
        }
    }

    static func logged(_ harness: BotHarness, _ message: String) -> Bool {
        harness.log.records.contains { $0["msg"] as? String == message }
    }

    static func joined(_ harness: BotHarness) -> Bool { logged(harness, "replica_joined") }

    /// Two replicas: one polls, both answer; the one polling stops, and the other polls from where
    /// it left off. Nothing is answered twice or lost; the two never poll at once.
    @Test func everyReplicaAnswersAndTheNextPollsWhenThePollerStops() async throws {
        let replicas = try Replicas()
        let telegram = replicas.telegram
        let first = try await replicas.start(try await replicas.harness())
        try await first.harness.eventually("the first polls") { Self.logged(first.harness, "leading") }
        let second = try await replicas.start(try await replicas.harness())
        defer { second.task.cancel() }
        try await second.harness.eventually("the second stands by and joins") {
            Self.logged(second.harness, "standby") && Self.joined(second.harness)
        }
        try await first.harness.eventually("the first counts two replicas") {
            first.harness.log.records.contains { $0["msg"] as? String == "replicas_alive" && "\($0["replicas"] ?? "")" == "2" }
        }
        let chats = (1...20).map { Int64(900 + $0) }
        // Answers that take a while, so that one replica cannot finish them all before the other looks.
        for _ in chats { replicas.llm.enqueue(.paced(String(repeating: "word ", count: 40), charactersPerEvent: 10, every: .milliseconds(50))) }
        for chat in chats { telegram.deliverText("to whoever answers \(chat)", chatID: chat) }
        try await first.harness.eventually("every answer") { chats.allSatisfy { telegram.visibleMessages(chatID: $0).count == 1 } }
        try await first.harness.eventually("every reply logged") { first.harness.replyRecords.count + second.harness.replyRecords.count == 20 }
        #expect(
            first.harness.replyRecords.count > 0 && second.harness.replyRecords.count > 0,
            "both answered: \([first, second].map { $0.harness.log.records.compactMap { $0["msg"] as? String }.filter { !["update", "model_call", "reply"].contains($0) } })")
        #expect(!Self.logged(second.harness, "leading"), "one polls")

        try await first.stop()
        try await second.harness.eventually("the second polls") { Self.logged(second.harness, "leading") }
        telegram.deliverText("after the poller stopped", chatID: 950)
        try await second.harness.eventually("its answer") { telegram.visibleMessages(chatID: 950).count == 1 }
        try await second.harness.eventually("the ledger closed") { await second.harness.store.openUpdatesCount == 0 }
        #expect(chats.allSatisfy { telegram.visibleMessages(chatID: $0).count == 1 }, "none answered twice")
        #expect(replicas.llm.chatRequests.count == 21)
        #expect(!Self.logged(first.harness, "poll_conflict") && !Self.logged(second.harness, "poll_conflict"), "never two pollers")
    }

    /// /metrics shows which replica polls, how many are alive, and the chats each holds.
    @Test func theMetricsShowTheLeaderAndTheLeases() async throws {
        let replicas = try Replicas()
        let running = [try await replicas.start(try await replicas.harness()), try await replicas.start(try await replicas.harness())]
        defer { running.forEach { $0.task.cancel() } }
        try await running[0].harness.eventually("both joined, one polls") {
            running.allSatisfy { Self.joined($0.harness) } && running.contains { Self.logged($0.harness, "leading") }
        }
        try await running[0].harness.eventually("each counts two") {
            running.allSatisfy { $0.harness.log.records.contains { $0["msg"] as? String == "replicas_alive" && "\($0["replicas"] ?? "")" == "2" } }
        }
        replicas.llm.enqueue(.paced(String(repeating: "slow ", count: 60), charactersPerEvent: 5, every: .milliseconds(50)))
        replicas.telegram.deliverText("a slow one", chatID: 990)
        let scraped = Mutex<[[String]]>([])
        for replica in running {
            let bot = try #require(replica.bot)
            try await ClusterServerTests.serving(metrics: BotMetrics(), status: bot.status, leases: bot.leases, store: replica.harness.store) { base in
                let text = try await ClusterServerTests.get(base, "metrics").text
                let lines = text.split(separator: "\n").map(String.init)
                scraped.withLock { $0.append(lines.filter { $0.hasPrefix("telegram_assistant_leader ") || $0.hasPrefix("telegram_assistant_replicas_alive ") }) }
            }
        }
        let seen = scraped.withLock { $0 }
        #expect(seen.map(\.count) == [2, 2])
        #expect(Set(seen.flatMap { $0 }.filter { $0.hasPrefix("telegram_assistant_leader ") }) == ["telegram_assistant_leader 1.0", "telegram_assistant_leader 0.0"])
        #expect(seen.allSatisfy { $0.contains("telegram_assistant_replicas_alive 2.0") })
        try await running[0].harness.eventually("one holds the slow chat while it answers") {
            let held = running.compactMap { $0.bot?.leases?.counts.chats }
            return held.sorted() == [0, 1]
        }
        try await running[0].harness.eventually("the answer") { replicas.telegram.visibleMessages(chatID: 990).count == 1 }
        try await running[0].harness.eventually("given back once answered") { running.allSatisfy { $0.bot?.leases?.counts.chats == 0 } }
    }

    /// A replica stalls long enough that its heartbeat lapses, with a chat's next message queued
    /// behind the answer it streams: another replica takes the chat and answers that message; the
    /// first, before showing anything for it, finds the chat gone and leaves it. Each message is
    /// asked once and answered once.
    @Test func aReplicaWhoseLeaseLapsedLeavesTheChatToTheOneThatTookIt() async throws {
        let replicas = try Replicas()
        let (telegram, llm) = (replicas.telegram, replicas.llm)
        let running = [try await replicas.start(try await replicas.harness()), try await replicas.start(try await replicas.harness())]
        defer { running.forEach { $0.task.cancel() } }
        try await running[0].harness.eventually("both joined") { running.allSatisfy { Self.joined($0.harness) } }
        let answer = String(repeating: "slow ", count: 80).trimmingCharacters(in: .whitespaces)
        llm.enqueue(.paced(answer, charactersPerEvent: 5, every: .milliseconds(50)), .answer("The second answer."))
        telegram.deliverText("first", chatID: 995)
        try await running[0].harness.eventually("the first answer under way") { llm.chatRequests.count == 1 }
        let holder = try #require(running.first { $0.bot?.leases?.counts.chats == 1 })
        let other = try #require(running.first { $0.bot?.leases?.counts.chats == 0 })
        let (holding, taking) = (try #require(holder.bot?.leases), try #require(other.bot?.leases))
        telegram.deliverText("second", chatID: 995)
        try await holder.harness.eventually("the second queued at the holder") { holding.handedOver.count == 2 }
        // The holder's heartbeat lapses (as if it had stalled); the other claims at once.
        let database = try #require(try await replicas.fixture.open() as? PostgresStore)
        _ = try await database.run("UPDATE replica SET expires_at = now() - interval '1 second' WHERE id = \(holding.replica)")
        taking.poke()
        try await other.harness.eventually("the other took the chat") { taking.counts.chats == 1 }
        try await other.harness.eventually("the second answered") { telegram.visibleMessages(chatID: 995).contains { $0.text == "The second answer." } }
        try await other.harness.eventually("the ledger closed") { await other.harness.store.openUpdatesCount == 0 }
        try await holder.harness.eventually("the holder found the chat gone before delivering the first and answering the second") {
            holder.harness.log.records.filter { $0["msg"] as? String == "lease_lost" }.count == 2
        }
        #expect(llm.chatRequests.count == 2, "each asked once")
        // The first was cut off by the takeover, as by a restart: the replica that took the chat
        // marked it, and the one that streamed it did not deliver it too.
        let notice = "I was restarted while answering your message. Please send it again."
        #expect(telegram.visibleMessages(chatID: 995).map(\.text) == [notice, "The second answer."])
    }

    /// A rolling restart under load: each replica in turn is stopped the way systemd stops it (a
    /// graceful shutdown) while both answer, and started again. A stopping replica finishes what
    /// it started; the other takes what comes meanwhile; every message is answered once, whole.
    @Test func aRollingRestartUnderLoadInterruptsNoAnswer() async throws {
        let replicas = try Replicas()
        let (telegram, llm) = (replicas.telegram, replicas.llm)
        let answer = String(repeating: "A long answer streams in. ", count: 12)
        let whole = answer.trimmingCharacters(in: .whitespaces)
        let grace = ["SHUTDOWN_GRACE_SECONDS": "30"]
        var running = [try await replicas.start(try await replicas.harness(grace)), try await replicas.start(try await replicas.harness(grace))]
        var everyone = running.map(\.harness)
        defer { running.forEach { $0.task.cancel() } }
        try await everyone[0].eventually("both joined") { everyone.allSatisfy(Self.joined) }
        var chats: [Int64] = []
        for round in 0..<2 {
            // Load on both, then the one that polls or not (each in turn) restarts under it.
            let early = (1...8).map { Int64(3_000 + round * 100 + $0) }
            let late = (1...8).map { Int64(3_050 + round * 100 + $0) }
            chats += early + late
            for _ in early + late { llm.enqueue(.paced(answer, charactersPerEvent: 8, every: .milliseconds(20))) }
            let asked = llm.chatRequests.count
            for chat in early { telegram.deliverText("early \(chat)", chatID: chat) }
            do {
                try await everyone[0].eventually("every early answer under way") { llm.chatRequests.count == asked + early.count }
            } catch {
                Issue.record("round \(round): \(llm.chatRequests.count - asked) asked; \(everyone.map { $0.log.records.compactMap { $0["msg"] as? String }.filter { !["update", "model_call", "reply", "Starting service"].contains($0) } })")
                throw error
            }
            let stopping = running.removeFirst()
            let stopped = Task { try await stopping.stop() }
            try await everyone[0].eventually("it stopped taking chats") { Self.logged(stopping.harness, "shutting_down") }
            for chat in late { telegram.deliverText("late \(chat)", chatID: chat) }
            try await stopped.value
            #expect(Self.logged(stopping.harness, "replica_left"))
            // The next round counts its own requests: this round's all reached the model first.
            try await everyone[0].eventually("every late answer under way") { llm.chatRequests.count >= chats.count }
            let again = try await replicas.start(try await replicas.harness(grace))
            running.append(again)
            everyone.append(again.harness)
            try await again.harness.eventually("it joined again") { Self.joined(again.harness) }
        }
        try await everyone[0].eventually("every answer") {
            chats.allSatisfy { telegram.visibleMessages(chatID: $0).map(\.text) == [whole] }
        }
        try await everyone[0].eventually("the ledger closed") { await everyone[0].store.openUpdatesCount == 0 }
        #expect(llm.chatRequests.count == chats.count, "each message asked once")
        #expect(everyone.map(\.replyRecords.count).reduce(0, +) == chats.count)
        #expect(!everyone.contains { $0.log.text.contains("interrupted") }, "no answer cut off")
        #expect(telegram.tooManyRequests == 0)
    }

    /// Three replicas take a burst of 200 chats, every replica answering: every answer complete
    /// and sent once, no 429 (the global budget is split among them).
    @Test func threeReplicasPollingTakeABurstOf200Chats() async throws {
        let replicas = try Replicas()
        var running: [Replicas.Running] = []
        for _ in 0..<3 { running.append(try await replicas.start(try await replicas.harness())) }
        defer { running.forEach { $0.task.cancel() } }
        try await burst(running.map(\.harness), replicas)
        #expect(running.filter { Self.logged($0.harness, "leading") }.count == 1, "one polled")
    }

    /// The same burst in webhook mode, behind a load balancer: every replica receives and answers.
    @Test func threeReplicasBehindAWebhookTakeABurstOf200Chats() async throws {
        let replicas = try Replicas()
        let ports = try (0..<3).map { _ in try WebhookTests.freePort() }
        let public_ = URL(string: "http://127.0.0.1:\(ports[0])/telegram/hook")!
        replicas.telegram.balanceWebhook(across: ports.map { URL(string: "http://127.0.0.1:\($0)")! })
        var running: [Replicas.Running] = []
        for port in ports {
            let harness = try await replicas.harness([
                "TELEGRAM_WEBHOOK_URL": public_.absoluteString, "WEBHOOK_LISTEN": "127.0.0.1:\(port)",
                "TELEGRAM_WEBHOOK_SECRET": WebhookTests.secret,
            ])
            let webhook = try #require(harness.config.telegram?.webhook)
            running.append(
                try await replicas.start(harness) { bot in
                    [
                        ClusterServer(
                            host: "127.0.0.1", port: port, metrics: nil,
                            webhook: ClusterServer.Webhook(path: public_.path, secret: webhook.secret, intake: bot.intake), status: bot.status,
                            store: harness.store, logger: harness.log.logger)
                    ]
                })
        }
        defer { running.forEach { $0.task.cancel() } }
        try await burst(running.map(\.harness), replicas)
        #expect(replicas.telegram.calls("getUpdates").isEmpty)
        let refused = replicas.telegram.webhookPosts.filter { $0.status != 200 }
        #expect(refused.isEmpty, "every post stored at the first try; not: \(refused)")
    }

    /// 200 chats at once at `harnesses`' replicas; checks what every burst must end with.
    func burst(_ harnesses: [BotHarness], _ replicas: Replicas) async throws {
        let (telegram, llm) = (replicas.telegram, replicas.llm)
        try await harnesses[0].eventually("all joined") { harnesses.allSatisfy(Self.joined) }
        do {
            try await harnesses[0].eventually("each counts three") {
                harnesses.allSatisfy { harness in
                    harness.log.records.contains { $0["msg"] as? String == "replicas_alive" && "\($0["replicas"] ?? "")" == "3" }
                }
            }
        } catch {
            // What each replica's heartbeat saw, for a failure that happens once in many runs.
            let seen = harnesses.map { harness in
                harness.log.records.filter { ["replicas_alive", "replica_joined", "heartbeat_failed", "store_failed"].contains($0["msg"] as? String ?? "") }
                    .map { "\($0["ts"] ?? "") \($0["msg"] ?? "") \($0["replicas"] ?? "") \($0["error"] ?? "")" }
            }
            Issue.record("the replicas' heartbeats: \(seen)")
            throw error
        }
        let chats = (1...200).map { Int64(20_000 + $0) }
        for chat in chats { telegram.deliverText("question \(chat)", chatID: chat) }
        do {
            try await harnesses[0].eventually("every answer", timeout: .seconds(90)) {
                chats.allSatisfy { telegram.visibleMessages(chatID: $0).count == 1 }
            }
        } catch {
            let statuses = Dictionary(grouping: telegram.webhookPosts.map { $0.status ?? 0 }, by: { $0 }).mapValues(\.count)
            Issue.record(
                """
                answered \(chats.filter { telegram.visibleMessages(chatID: $0).count == 1 }.count), pending at Telegram \(telegram.pendingUpdateCount), \
                posts \(statuses), replies \(harnesses.map(\.replyRecords.count)), open \(await harnesses[0].store.openUpdatesCount)
                """)
            throw error
        }
        try await harnesses[0].eventually("every reply logged") { harnesses.map(\.replyRecords.count).reduce(0, +) == 200 }
        try await harnesses[0].eventually("the ledger closed") { await harnesses[0].store.openUpdatesCount == 0 }
        #expect(llm.chatRequests.count == 200, "each asked once")
        // Replicas that start together may each ask for the webhook; Telegram refuses all but one with 429.
        let refusedWebhooks = telegram.calls("setWebhook").filter { $0.status == 429 }.count
        #expect(telegram.tooManyRequests == refusedWebhooks, "the global budget was shared: \(telegram.floodRejections)")
        #expect(chats.allSatisfy { telegram.visibleMessages(chatID: $0).count == 1 }, "none answered twice")
        #expect(harnesses.allSatisfy { $0.replyRecords.count > 0 }, "every replica answered: \(harnesses.map(\.replyRecords.count))")
    }

    /// The real binary, three times on one database, takes a burst; one replica is killed
    /// (SIGKILL) in the middle of it. When its heartbeat expires the others take its chats and, as
    /// after a restart, deliver a saved answer or tell the user it was cut off: every message ends
    /// with exactly one answer or notice, nothing is lost, nothing asked twice.
    @Test(.enabled(if: CrashRecoveryTests.binary != nil, "needs the built binary"))
    func aReplicaKilledInTheMiddleOfABurstLosesNothing() async throws {
        let fixture = StoreFixture(backend: .postgres)
        let observer = try await fixture.open()
        let (llm, telegram) = (try FakeOpenAIServer(), try FakeTelegramServer())
        let directory = TemporaryDirectory()
        var environment = CrashRecoveryTests.environment(llm, telegram, database: "")
        environment["DATABASE_PATH"] = nil
        environment["DATABASE_URL"] = StoreFixture.testDatabaseURL! + "&schema=\(fixture.schema)"
        // Short, for a quick takeover; not so short that a survivor's heartbeat, late on a loaded
        // machine, lapses (that is the stall case, which has a test of its own).
        environment["REPLICA_TIMEOUT_SECONDS"] = "8"
        func log(_ name: String) -> String { (try? String(contentsOfFile: directory.path + "/\(name).log", encoding: .utf8)) ?? "" }
        let names = ["a", "b", "c"]
        var bots: [String: CrashRecoveryTests.Bot] = [:]
        for name in names {
            var mine = environment
            mine["LOG_FILE"] = directory.path + "/\(name).log"
            bots[name] = try CrashRecoveryTests.Bot(binary: try #require(CrashRecoveryTests.binary), environment: mine)
        }
        let harness = try BotHarness(llmServer: llm, telegram: telegram)  // for `eventually`
        try await harness.eventually("all joined") { names.allSatisfy { log($0).contains(#""msg":"replica_joined""#) } }
        try await harness.eventually("each counts three") { names.allSatisfy { log($0).contains(#""replicas":3"#) } }
        let answer = String(repeating: "Words arrive one by one. ", count: 16)
        let chats = (1...60).map { Int64(40_000 + $0) }
        for _ in chats { llm.enqueue(.paced(answer, charactersPerEvent: 8, every: .milliseconds(40))) }
        for chat in chats { telegram.deliverText("question \(chat)", chatID: chat) }
        // Kill one that is answering (not the poller, whose death a test above covers).
        // Kill one that streams answers (not the poller, whose death a test above covers).
        let database = try #require(observer as? PostgresStore)
        func streaming(_ name: String) async -> Int {
            let pid = bots[name]!.process.pid
            let rows = try? await database.run(
                """
                SELECT count(*) AS n FROM telegram_update u JOIN chat_lease l ON l.chat_id = u.chat_id
                WHERE u.status = 'answering' AND u.reply IS NULL AND l.replica LIKE \("%-\(pid)-%")
                """)
            return (try? rows?.first?["n"].decode(Int.self)) ?? 0
        }
        var victim = ""
        try await harness.eventually("a replica streaming answers") {
            for name in names where !log(name).contains(#""msg":"leading""#) {
                if await streaming(name) >= 5 {
                    victim = name
                    return true
                }
            }
            return false
        }
        try await bots[victim]?.kill()
        let notice = "I was restarted while answering your message. Please send it again."
        let whole = answer.trimmingCharacters(in: .whitespaces)
        try await harness.eventually("every message answered or marked", timeout: .seconds(90)) {
            chats.allSatisfy { telegram.visibleMessages(chatID: $0).count >= 1 }
        }
        try await harness.eventually("the ledger closed") { await observer.openUpdatesCount == 0 }
        let lapses = names.filter { $0 != victim }.map { name in
            log(name).components(separatedBy: "\n").filter { $0.contains(#""msg":"lease_lost""#) || $0.contains(#""msg":"replicas_alive""#) }.count
        }
        for chat in chats {
            let texts = telegram.visibleMessages(chatID: chat).map(\.text)
            #expect(texts == [whole] || texts == [notice], "chat \(chat): \(texts.map { String($0.prefix(40)) }); survivors' lease and liveness lines: \(lapses)")
        }
        let marked = chats.filter { telegram.visibleMessages(chatID: $0).map(\.text) == [notice] }.count
        #expect(marked > 0, "the killed replica (\(victim)) had answers under way: \(names.map { log($0).components(separatedBy: #""event":"reply""#).count - 1 })")
        #expect(llm.chatRequests.count <= chats.count, "none asked twice")
        #expect(telegram.tooManyRequests == 0)
        for name in names where name != victim { #expect(try await bots[name]!.terminate() == 0) }
    }
}
#endif
