import Testing

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import Support
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd
@testable import TerminalFrontEnd

@Suite struct JSONValueTests {
    @Test func parsesEveryKindOfValue() throws {
        let value = try JSONValue.parse(#" {"a": [1, -2.5e3, true, false, null], "b": {"c": "d"}, "e": "", "f": 0} "#)
        #expect(value["a"] == .array([.number(1), .number(-2500), .bool(true), .bool(false), .null]))
        #expect(value["b"]?["c"] == .string("d"))
        #expect(value["e"] == .string(""))
        #expect(value["f"]?.integer == 0)
        #expect(value["missing"] == nil)
    }

    @Test func decodesEscapesAndKeepsUnicode() throws {
        let value = try JSONValue.parse(#""q\"b\\s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 ü 日本""#)
        #expect(value == .string("q\"b\\s/ \u{08}\u{0C}\n\r\t é 😀 ü 日本"))
        // A lone surrogate cannot be a String: it becomes U+FFFD rather than failing the answer.
        #expect(try JSONValue.parse(#""a\ud800b""#) == .string("a\u{FFFD}b"))
        #expect(try JSONValue.parse(#""\udc00""#) == .string("\u{FFFD}"))
    }

    @Test func rejectsWhatIsNotJSON() {
        let bad = [
            "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{a:1}", "'x'", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul",
            "\"unterminated", "\"bad \\x escape\"", "\"\\u12\"", "\"control \u{01} char\"", "[1] 2", "{\"a\" 1}", "NaN",
        ]
        for text in bad {
            #expect(throws: JSONValue.Malformed.self, "\(text)") { try JSONValue.parse(text) }
        }
    }

    @Test func deepNestingIsRefusedNotACrash() throws {
        #expect(throws: JSONValue.Malformed.self) { try JSONValue.parse(String(repeating: "[", count: 100_000)) }
        _ = try JSONValue.parse(String(repeating: "[", count: 60) + String(repeating: "]", count: 60))
    }

    @Test func chatChunksReadLikeOpenAIs() throws {
        let chunk = try OpenAI.ChatChunk(
            #"{"id":"x","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":{"prompt_tokens":3,"completion_tokens":"lots"}}"#)
        #expect(chunk.model == "m")
        #expect(chunk.choices?.first?.content == "Hi")
        #expect(chunk.choices?.first?.finishReason == nil)
        #expect(chunk.usage == OpenAI.Usage(promptTokens: 3, completionTokens: nil))
        let error = try OpenAI.ChatChunk(#"{"error":{"message":"overloaded","code":503}}"#)
        #expect(error.error?.message == "overloaded")
        #expect(error.error?.code == "503")
        for wrong in [#"[]"#, #"{"choices":{}}"#, #"{"choices":[{"delta":{"content":5}}]}"#, #"{"choices":[{"finish_reason":1}]}"#, #"{"error":"x"}"#] {
            #expect(throws: JSONValue.Malformed.self, "\(wrong)") { try OpenAI.ChatChunk(wrong) }
        }
    }
}
