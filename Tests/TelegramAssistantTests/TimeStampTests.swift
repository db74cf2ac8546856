import Foundation
import GRDB
import Testing

@testable import AssistantStore

/// The store writes time stamps itself; they must be exactly the text GRDB wrote for a `Date`, or
/// old and new rows would not compare (retention, pruning).
@Suite struct TimeStampTests {
    /// GRDB's own text for `date`.
    private func grdb(_ date: Date) -> String? {
        String.fromDatabaseValue(date.databaseValue)
    }

    @Test func matchesGRDBsTextAtTheEdges() {
        let edges: [TimeInterval] = [
            0, 0.0009, 0.001, 0.999, 0.9999999, 59.999, 86_399.999, 86_400,
            951_782_400,  // 2000-02-29
            1_709_164_800.5,  // 2024-02-29 00:00:00.500
            4_102_444_799.999,  // 2099-12-31 23:59:59.999
            1_796_268_977.291_233_5,
        ]
        for seconds in edges {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(TimeStamp.text(date) == grdb(date), "\(seconds)")
        }
    }

    @Test func matchesGRDBsTextOverTwoCenturies() {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let date = Date(timeIntervalSince1970: Double.random(in: 0..<7_258_118_400, using: &random))  // to 2200
            #expect(TimeStamp.text(date) == grdb(date))
        }
    }

    @Test func aStoredTurnStillReadsBackItsDates() async throws {
        let store = try SQLiteStore(now: { Date(timeIntervalSince1970: 1_796_268_977.25) })
        let conversation = try await store.createConversation(kind: "test")
        let turn = try await store.appendMessage(conversationID: conversation.id, role: .user, content: "hi")
        #expect(turn.createdAt == Date(timeIntervalSince1970: 1_796_268_977.25))
        #expect(try await store.conversation(id: conversation.id)?.createdAt == Date(timeIntervalSince1970: 1_796_268_977.25))
    }
}
