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

@Suite(.timeLimit(.minutes(2))) struct SSEDecoderTests {
    /// Feeds `text` cut at the given byte offsets and collects every event.
    func decode(_ text: String, cuts: [Int]) -> [String] {
        let bytes = Array(text.utf8)
        var decoder = SSEDecoder()
        var events: [String] = []
        var start = 0
        for cut in cuts.sorted() + [bytes.count] where cut >= start && cut <= bytes.count {
            do {
                events += try decoder.feed(bytes[start..<cut])
            } catch {
                Issue.record("an ordinary event was too large")
            }
            start = cut
        }
        return events + decoder.finish()
    }

    @Test func decodesSeveralEventsInOneChunk() {
        #expect(decode("data: a\n\ndata: b\n\ndata: [DONE]\n\n", cuts: []) == ["a", "b", "[DONE]"])
    }

    @Test func skipsCommentsKeepAlivesAndOtherFields() {
        let text = ": OPENROUTER PROCESSING\n\nevent: message\nid: 7\nretry: 100\ndata: x\n\n:\n\n"
        #expect(decode(text, cuts: []) == ["x"])
    }

    @Test func joinsMultiLineDataWithNewlines() {
        #expect(decode("data: one\ndata: two\n\n", cuts: []) == ["one\ntwo"])
    }

    @Test func acceptsCRLFAndCRLineEndingsEvenWhenThePairIsSplit() {
        let text = "data: a\r\n\r\ndata: b\r\rdata: c\n\n"
        let whole = decode(text, cuts: [])
        #expect(whole == ["a", "b", "c"])
        for cut in 0...text.utf8.count {
            #expect(decode(text, cuts: [cut]) == whole, "cut at \(cut)")
        }
    }

    @Test func keepsMultiByteCharactersSplitAcrossChunks() {
        let text = "data: {\"c\":\"héllo 👋🏽 日本\"}\n\n"
        let expected = ["{\"c\":\"héllo 👋🏽 日本\"}"]
        for cut in 0...text.utf8.count {
            #expect(decode(text, cuts: [cut]) == expected, "cut at \(cut)")
        }
        #expect(decode(text, cuts: Array(0...text.utf8.count)) == expected)  // one byte at a time
    }

    @Test func dataWithoutSpaceAfterColonAndEmptyData() {
        #expect(decode("data:x\n\ndata\n\n", cuts: []) == ["x", ""])
    }

    @Test func deliversALastEventThatLacksItsBlankLine() {
        #expect(decode("data: a\n\ndata: b", cuts: []) == ["a", "b"])
    }

    @Test func anySplitOfARealisticStreamGivesTheSameEvents() {
        let text = FakeSSE.sample
        let expected = decode(text, cuts: [])
        #expect(expected.count == 6)
        var generator = SplitMix(seed: 42)
        for _ in 0..<300 {
            let count = Int(generator.next() % 12)
            let cuts = (0..<count).map { _ in Int(generator.next() % UInt64(text.utf8.count + 1)) }
            #expect(decode(text, cuts: cuts) == expected, "cuts \(cuts)")
        }
    }

    /// A server that never ends its line cannot make the bot buffer without end.
    @Test func aLineThatNeverEndsIsAnErrorNotUnboundedMemory() {
        var decoder = SSEDecoder(maxEventBytes: 64 * 1024)
        let chunk = Array(repeating: UInt8(ascii: "x"), count: 4096)
        var thrown = false
        for _ in 0..<100 {
            do {
                _ = try decoder.feed(chunk[...])
            } catch {
                thrown = true
                break
            }
        }
        #expect(thrown)
        // So does an event of many data lines that never ends with its blank line.
        var lines = SSEDecoder(maxEventBytes: 64 * 1024)
        let dataLine = Array("data: \(String(repeating: "y", count: 1000))\n".utf8)
        #expect(throws: SSEDecoder.EventTooLarge.self) {
            for _ in 0..<100 { _ = try lines.feed(dataLine[...]) }
        }
    }

    @Test func anEndlessLineFromTheServerEndsTheCallAsMalformed() async throws {
        let harness = try Harness()
        let endless = FakeOpenAIServer.Behavior.rawSSE("data: " + String(repeating: "z", count: 1_200_000), chunkSize: 64 * 1024)
        harness.server.enqueue(endless, endless, endless)
        do {
            _ = try await harness.runner.complete(harness.request("q")) { _ in }
            Issue.record("an endless line was accepted")
        } catch let failure as CompletionFailure {
            #expect(failure.error == .malformedEvent)
        }
    }

}

enum FakeSSE {
    static let sample = """
        : keep-alive\r
        \r
        data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\r
        \r
        data: {"choices":[{"index":0,"delta":{"content":"Grüß "}}]}\r
        \r
        data: {"choices":[{"index":0,"delta":{"content":"dich 🌍"}}]}

        data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

        data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}

        data: [DONE]


        """

}
