import Foundation
import Logging
import Testing

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import Support
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd
@testable import TerminalFrontEnd

@Suite(.timeLimit(.minutes(2))) struct JSONLogHandlerTests {
    @Test func writesOneParsableObjectPerLineWithTypedValues() throws {
        let log = try LogCapture()
        var logger = log.logger
        logger[metadataKey: "service"] = "bot"
        logger.info(
            "model_call",
            metadata: [
                "latency_ms": .stringConvertible(1234), "usage_estimated": .stringConvertible(true),
                "model": "a \"quoted\"\nname\u{01}", "nested": ["k": "v"], "list": [.stringConvertible(1), "two"],
            ])
        logger.debug("second")
        let records = log.records
        #expect(records.count == 2)
        let first = try #require(records.first)
        #expect(first["msg"] as? String == "model_call")
        #expect(first["level"] as? String == "info")
        #expect(first["service"] as? String == "bot")
        #expect((first["latency_ms"] as? NSNumber)?.intValue == 1234)
        #expect(first["usage_estimated"] as? Bool == true)
        #expect(first["model"] as? String == "a \"quoted\"\nname\u{01}")
        #expect((first["nested"] as? [String: String]) == ["k": "v"])
        #expect((first["ts"] as? String)?.hasSuffix("Z") == true)
        #expect(log.text.split(separator: "\n").count == 2)
    }

    @Test func respectsTheLevel() throws {
        let log = try LogCapture()
        let logger = Assistant.makeLogger(label: "t", level: .warning, sink: log.sink)
        logger.info("hidden")
        logger.warning("shown")
        #expect(log.records.map { $0["msg"] as? String } == ["shown"])
    }
}
