import Foundation
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

@Suite(.timeLimit(.minutes(2))) struct CheckupTests {
    func check(_ llm: FakeOpenAIServer.Settings = .init(models: ["test-model"]), overrides: [String: String] = [:]) async throws -> ([Checkup.Result], String) {
        let directory = TemporaryDirectory()
        var all = ["DATABASE_PATH": directory.path + "/check.sqlite"]
        all.merge(overrides) { $1 }
        let harness = try BotHarness(llm: llm, overrides: all)
        let results = await Checkup(config: harness.config, clock: ContinuousClock()).run()
        return (results, Checkup.report(results, config: harness.config))
    }

    @Test func everythingPassesAgainstHealthyServers() async throws {
        let (results, report) = try await check()
        #expect(results.count == 3)
        #expect(results.allSatisfy { $0.passed }, "\(report)")
        #expect(report.contains("the token belongs to @test_assistant_bot"))
        #expect(report.contains("lists test-model"))
        #expect(report.hasSuffix("All checks passed."))
        #expect(!report.contains("test-key"), "the API key is masked")
        #expect(!report.contains("TEST-token"), "the bot token is masked")
    }

    @Test func aRejectedBotTokenFails() async throws {
        let (results, report) = try await check(overrides: ["TELEGRAM_BOT_TOKEN": "999:wrong-but-well-formed-token-xx"])
        #expect(results.first { $0.name == "telegram" }?.passed == false)
        #expect(report.contains("TELEGRAM_BOT_TOKEN was rejected by Telegram"))
        #expect(report.hasSuffix("Some checks failed."))
    }

    @Test func aRejectedAPIKeyFails() async throws {
        let (results, _) = try await check(overrides: ["OPENAI_API_KEY": "wrong-key"])
        let provider = try #require(results.first { $0.name == "model provider" })
        #expect(!provider.passed)
        #expect(provider.detail.contains("OPENAI_API_KEY was rejected"))
    }

    @Test func aModelTheServerDoesNotListFails() async throws {
        let (results, _) = try await check(overrides: ["OPENAI_MODEL": "no-such-model"])
        let provider = try #require(results.first { $0.name == "model provider" })
        #expect(!provider.passed)
        #expect(provider.detail.contains("does not list no-such-model"))
    }

    @Test func withoutAModelListAOneTokenRequestDecides() async throws {
        var settings = FakeOpenAIServer.Settings()
        settings.servesModelList = false
        let (results, _) = try await check(settings)
        let provider = try #require(results.first { $0.name == "model provider" })
        #expect(provider.passed)
        #expect(provider.detail.contains("answered a one-token request"))
    }

    @Test func anUnwritableDatabaseFails() async throws {
        let (results, _) = try await check(overrides: ["DATABASE_PATH": "/proc/no/such/dir/db.sqlite"])
        let database = try #require(results.first { $0.name == "database" })
        #expect(!database.passed)
        #expect(database.detail.contains("cannot create the database directory"))
    }
}
