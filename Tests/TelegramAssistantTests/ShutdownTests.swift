import Foundation
import Logging
import ServiceLifecycle
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

@Suite(.timeLimit(.minutes(2))) struct ShutdownTests {
    /// Runs the bot in a ServiceGroup, as `telegram-assistant run` does, so graceful shutdown is real.
    func runInGroup(_ bot: TelegramBot, logger: Logger) -> (ServiceGroup, Task<Void, any Error>) {
        let group = bot.serviceGroup(logger: logger)
        return (group, Task { try await group.run() })
    }

    @Test func aReplyCutOffByShutdownIsFinalizedAndSaved() async throws {
        let harness = try BotHarness(overrides: ["SHUTDOWN_GRACE_SECONDS": "0"])
        harness.llm.enqueue(.stall(after: "Half of the answer "))
        let systemd = try SystemdNotifierTests.FakeSystemd()
        let bot = try await harness.connect(notifier: SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.path]))
        let (group, running) = runInGroup(bot, logger: harness.log.logger)
        defer { running.cancel() }  // no bot outlives its test, however the test ends
        #expect(await systemd.receive() == "READY=1\nSTATUS=Polling; 0 chats served since start, 0 replying now")
        harness.telegram.deliverText("tell me", chatID: 950)
        try await harness.eventually("the draft") { !harness.telegram.drafts(chatID: 950).isEmpty }
        await group.triggerGracefulShutdown()
        try await running.value
        // Polls while the reply ran may have sent a changed STATUS= first.
        var next = await systemd.receive()
        while next?.hasPrefix("STATUS=Polling; ") == true { next = await systemd.receive() }
        #expect(next?.hasPrefix("STOPPING=1") == true, "\(next ?? "nothing")")
        #expect(harness.texts(950) == ["Half of the answer\n\n(interrupted)"])
        let conversation = try await harness.store.conversation(kind: "telegram", externalID: 950)
        #expect(try await harness.store.allMessages(conversationID: conversation.id).map(\.status) == [.complete, .partial])
        #expect(await harness.store.openUpdatesCount == 0)
        #expect(harness.log.records.contains { $0["msg"] as? String == "shutdown_grace_expired" })
    }

    /// Messages queued behind a reply that the grace period cut off have not started: they stay
    /// open and are answered after the restart, commands included; nothing gets a bare "(interrupted)".
    @Test func queuedMessagesOutliveTheGracePeriodAndAreAnsweredAfterTheRestart() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/bot.sqlite"
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let llm = try FakeOpenAIServer()
        llm.enqueue(.stall(after: "Working on it "))
        do {
            let harness = try BotHarness(llmServer: llm, telegram: telegram, overrides: ["SHUTDOWN_GRACE_SECONDS": "0"], store: try SQLiteStore(path: path))
            let bot = try await harness.connect()
            let (group, running) = runInGroup(bot, logger: harness.log.logger)
            defer { running.cancel() }  // no bot outlives its test, however the test ends
            telegram.deliverText("first", chatID: 952, messageID: 1)
            try await harness.eventually("the draft") { !telegram.drafts(chatID: 952).isEmpty }
            telegram.deliverText("second", chatID: 952, messageID: 2)
            telegram.deliverText("/help", chatID: 952, messageID: 3)
            try await harness.eventually("both queued") { await harness.store.openUpdatesCount == 3 && telegram.pendingUpdateCount == 0 }
            await group.triggerGracefulShutdown()
            try await running.value
            #expect(telegram.visibleMessages(chatID: 952).map(\.text) == ["Working on it\n\n(interrupted)"])
            #expect(await harness.store.openUpdatesCount == 2, "the two that never started stay open")
        }
        let second = try BotHarness(llmServer: llm, telegram: telegram, store: try SQLiteStore(path: path))
        try await second.withBot { _ in
            try await second.eventually("both answered") { telegram.visibleMessages(chatID: 952).count == 3 }
            try await second.eventually("handled") { await second.store.openUpdatesCount == 0 }
        }
        let texts = telegram.visibleMessages(chatID: 952).map(\.text)
        #expect(texts[1] == "Echo: second")
        #expect(texts[2].hasPrefix("I'm an AI assistant."))
    }

    @Test func repliesInFlightFinishWithinTheGracePeriod() async throws {
        let harness = try BotHarness(overrides: ["SHUTDOWN_GRACE_SECONDS": "20"])
        // Five seconds of answer: five long polls (1 s here) for a poller that went on.
        harness.llm.enqueue(.answer(String(repeating: "steady ", count: 40), chunkSize: 150, pause: .milliseconds(100)))
        let bot = try await harness.connect()
        let (group, running) = runInGroup(bot, logger: harness.log.logger)
        defer { running.cancel() }  // no bot outlives its test, however the test ends
        harness.telegram.deliverText("tell me", chatID: 951)
        try await harness.eventually("the draft") { !harness.telegram.drafts(chatID: 951).isEmpty }
        await group.triggerGracefulShutdown()
        let polls = harness.telegram.pollsReceived
        try await running.value
        #expect(harness.texts(951) == [String(repeating: "steady ", count: 40).trimmingCharacters(in: .whitespaces)])
        // At most two more on a slow machine: the poll in flight, not yet counted by the fake when
        // it was read, and one more that its empty answer started before the cancel arrived.
        #expect(harness.telegram.pollsReceived <= polls + 2, "polling stops at once")
        #expect(!harness.log.records.contains { $0["msg"] as? String == "shutdown_grace_expired" })
    }

    @Test func thePollingLoopFeedsTheWatchdog() async throws {
        let harness = try BotHarness()
        let systemd = try SystemdNotifierTests.FakeSystemd()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "400000"])
        let bot = try await harness.connect(notifier: notifier)
        let (group, running) = runInGroup(bot, logger: harness.log.logger)
        defer { running.cancel() }  // no bot outlives its test, however the test ends
        #expect(await systemd.receive() == "READY=1\nSTATUS=Polling; 0 chats served since start, 0 replying now")
        // Each long poll (1 s here) that returns pings the watchdog; a poller that hangs would not.
        #expect(await systemd.receive() == "WATCHDOG=1")
        #expect(await systemd.receive() == "WATCHDOG=1")
        await group.triggerGracefulShutdown()
        try await running.value
    }

    /// The watchdog means "the process is alive and its loops turn", not "Telegram answered": a
    /// Telegram outage longer than WatchdogSec= must not get a healthy bot killed (with a core dump).
    @Test func aTelegramOutageDoesNotStopTheWatchdog() async throws {
        let harness = try BotHarness()
        let systemd = try SystemdNotifierTests.FakeSystemd()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "400000"])
        let bot = try await harness.connect(notifier: notifier)
        let (group, running) = runInGroup(bot, logger: harness.log.logger)
        defer { running.cancel() }  // no bot outlives its test, however the test ends
        do {
            var first = await systemd.receive()
            while first == "WATCHDOG=1" { first = await systemd.receive() }
            #expect(first?.hasPrefix("READY=1") == true)
            harness.telegram.setOutage(true)
            try await harness.eventually("a failed poll") { harness.telegram.calls("getUpdates").contains { $0.status == 502 } }
            // Ten pings at 0.2 s: two seconds of outage, over five times WatchdogSec= (0.4 s).
            var pings = 0
            while pings < 10, let datagram = await systemd.receive() {
                if datagram == "WATCHDOG=1" { pings += 1 }
            }
            #expect(pings == 10)
            harness.telegram.setOutage(false)
            harness.telegram.deliverText("are you there?", chatID: 953)
            try await harness.eventually("the answer after the outage") { harness.texts(953) == ["Echo: are you there?"] }
        } catch {
            await group.triggerGracefulShutdown()
            _ = await running.result
            throw error
        }
        await group.triggerGracefulShutdown()
        try await running.value
    }

    /// A notify socket that nobody reads (its queue full) must never block the bot's threads.
    @Test func notifyingAReceiverThatDoesNotReadNeverBlocks() async throws {
        let systemd = try SystemdNotifierTests.FakeSystemd()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.path])
        var refused = 0
        for _ in 0..<5_000 where !notifier.notify("WATCHDOG=1") { refused += 1 }
        #expect(refused > 0, "the queue filled up and the sends were dropped, not waited for")
    }

    /// After an outage the bot answers within seconds of Telegram coming back: the poll backoff
    /// is capped, and a 409 still waits the few seconds Telegram spaces its conflicts by.
    @Test func thePollBackoffIsCappedAtAFewSeconds() async throws {
        for failures in [1, 2, 5, 10, 100, Int.max] {
            for random in [0.0, 0.5, 0.999_999] {
                let wait = UpdateIntake.backoff(conflict: false, random: { random }).wait(after: failures)
                #expect(wait <= .seconds(5) && wait >= .milliseconds(200), "\(failures) failures: \(wait)")
                let conflict = UpdateIntake.backoff(conflict: true, random: { random }).wait(after: failures)
                #expect(conflict >= .seconds(3) && conflict <= .seconds(5))
            }
        }
    }

    @Test func theStatusFollowsTheChatsAfterEachPoll() async throws {
        let harness = try BotHarness()
        let systemd = try SystemdNotifierTests.FakeSystemd()
        let bot = try await harness.connect(notifier: SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.path]))
        let (group, running) = runInGroup(bot, logger: harness.log.logger)
        defer { running.cancel() }  // no bot outlives its test, however the test ends
        #expect(await systemd.receive() == "READY=1\nSTATUS=Polling; 0 chats served since start, 0 replying now")
        harness.telegram.deliverText("hello", chatID: 31)
        try await harness.eventually("the answer") { harness.replyRecords.count == 1 }
        var statuses: [String] = []
        while statuses.last != "STATUS=Polling; 1 chat served since start, 0 replying now" {
            guard let datagram = await systemd.receive() else { break }
            statuses.append(datagram)
        }
        #expect(statuses.last == "STATUS=Polling; 1 chat served since start, 0 replying now", "\(statuses)")
        #expect(statuses.allSatisfy { $0.hasPrefix("STATUS=Polling; ") }, "no WATCHDOG=1 without WatchdogSec, \(statuses)")
        await group.triggerGracefulShutdown()
        try await running.value
    }
}
