import AssistantStore
import Conversation
import Foundation
import OpenAIClient
import Support
import TelegramAssistant
import TelegramBotAPI
import TelegramFrontEnd
import TestSupport

/// `telegram-assistant-bench fuzz [--seconds N] [--seed S]`: random and mutated inputs for the
/// parsers that read what the network and the model send, N seconds per target. Any crash ends the
/// run (a trap is a crash); a broken property is printed with the input's seed, and the exit status
/// is non-zero.
///
/// - SSE decoding: random event streams (CR, LF, CRLF, comments, fields, broken UTF-8) fed whole and
///   in random splits must give the same events.
/// - Markdown → entities → split: every part at most 4,096 code points, every entity inside its
///   part (UTF-16), of a type Telegram knows, and no text lost or added.
/// - Update decoding: a getUpdates batch with mutated JSON decodes update by update, never failing
///   the whole batch for one element.
enum Fuzz {
    static func run(arguments: [String]) -> Int32 {
        func option(_ name: String) -> String? {
            arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
        }
        let seconds = Double(option("--seconds") ?? "60") ?? 60
        let seed = UInt64(option("--seed") ?? "1") ?? 1
        var failures = 0
        for (name, target) in [("SSE decoder", sse), ("Markdown renderer + splitter", markdown), ("update decoding", updates)] as [(String, (inout SplitMix) -> String?)] {
            var random = SplitMix(seed: seed)
            let deadline = ContinuousClock.now + .seconds(seconds)
            var inputs = 0
            var broken = 0
            while ContinuousClock.now < deadline {
                for _ in 0..<50 {
                    inputs += 1
                    let before = random
                    if let problem = target(&random) {
                        broken += 1
                        if broken <= 5 { say("  \(name): \(problem) (input state \(before.state))") }
                    }
                }
            }
            say("fuzz \(name): \(inputs) inputs in \(Int(seconds)) s, \(broken) broken")
            failures += broken
        }
        say(failures == 0 ? "PASS" : "FAIL")
        return failures == 0 ? 0 : 1
    }

    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    // MARK: SSE

    static let ssePieces: [[UInt8]] = [
        Array("data: ".utf8), Array("data:".utf8), Array("data".utf8), Array(": keep-alive".utf8), Array("event: x".utf8),
        Array("id: 1".utf8), Array("retry: 5".utf8), Array("\n".utf8), Array("\r".utf8), Array("\r\n".utf8), Array("\n\n".utf8),
        Array("{\"choices\":[]}".utf8), Array("[DONE]".utf8), Array("wörd 👋🏽 ".utf8), [0xF0, 0x9F], [0x98, 0x80], [0xFF], [0xC3],
        Array(" ".utf8), Array(":".utf8),
    ]

    static func sse(_ random: inout SplitMix) -> String? {
        var bytes: [UInt8] = []
        for _ in 0..<Int.random(in: 0...60, using: &random) { bytes += ssePieces.randomElement(using: &random)! }
        var whole = SSEDecoder()
        guard var expected = try? whole.feed(bytes[...]) else { return "a small stream was too large" }
        expected += whole.finish()
        var split = SSEDecoder()
        var events: [String] = []
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + Int.random(in: 1...9, using: &random))
            guard let decoded = try? split.feed(bytes[start..<end]) else { return "a small stream was too large" }
            events += decoded
            start = end
        }
        events += split.finish()
        return events == expected ? nil : "split decoding differs: \(events.count) events, not \(expected.count)"
    }

    // MARK: Markdown

    static let markdownPieces = [
        "**", "*", "__", "_", "`", "```", "```swift\n", "~~", "||", "[", "]", "(", ")", "](https://example.org/a_(b))", "# ", "## ",
        "> ", "- ", "1. ", "\n", "\n\n", " ", "word", "Wörd", "👋🏽", "👨‍👩‍👧‍👦", "e\u{301}", "\u{200D}", "\u{200B}", "\u{202E}", "مرحبا",
        "שלום", "<b>", "</b>", "&amp;", "\\", "|", "---", "\t", "\u{0}", "\u{7}", "😀", "\u{FE0F}", "https://example.org", "@someone",
    ]

    static let entityTypes: Set<String> = [
        "bold", "italic", "underline", "strikethrough", "spoiler", "code", "pre", "text_link", "blockquote", "expandable_blockquote",
    ]

    static func markdown(_ random: inout SplitMix) -> String? {
        var text = ""
        let length = Bool.random(using: &random) ? Int.random(in: 0...80, using: &random) : Int.random(in: 500...3000, using: &random)
        for _ in 0..<length { text += markdownPieces.randomElement(using: &random)! }
        if Int.random(in: 0..<40, using: &random) == 0 {
            // One grapheme cluster longer than a whole message: a letter and thousands of marks.
            text += "a" + String(repeating: "\u{301}", count: Int.random(in: 4000...6000, using: &random))
        }
        let rendered = MarkdownRenderer.render(text)
        if let problem = entitiesProblem(rendered) { return "rendered: \(problem)" }
        let parts = rendered.split()
        for part in parts {
            if part.text.unicodeScalars.count > FormattedText.maxCodePoints { return "a part of \(part.text.unicodeScalars.count) code points" }
            if let problem = entitiesProblem(part) { return "part: \(problem)" }
        }
        let kept = parts.map(\.text).joined().filter { !$0.isWhitespace }
        let all = rendered.text.filter { !$0.isWhitespace }
        if kept.count < all.count * 9 / 10 { return "the parts lost text (\(kept.count) of \(all.count) characters)" }
        return nil
    }

    static func entitiesProblem(_ text: FormattedText) -> String? {
        let units = text.text.utf16.count
        for entity in text.entities {
            guard entityTypes.contains(entity.type) else { return "unknown entity type \(entity.type)" }
            guard entity.offset >= 0, entity.length > 0, entity.offset + entity.length <= units else {
                return "\(entity.type) at \(entity.offset)+\(entity.length) outside \(units) UTF-16 units"
            }
            if entity.type == "text_link", entity.url?.isEmpty ?? true { return "text_link without url" }
        }
        return nil
    }

    // MARK: Updates

    static let update = #"""
        {"update_id":77,"message":{"message_id":5,"date":1700000000,"from":{"id":9,"is_bot":false,"first_name":"Ann","username":"ann"},"chat":{"id":-100123,"type":"supergroup","title":"G"},"text":"@bot hello","entities":[{"type":"mention","offset":0,"length":4}],"reply_to_message":{"message_id":4,"from":{"id":1,"is_bot":true,"first_name":"Bot"}}}}
        """#
    static let mutations: [String] = ["", "null", "0", "-1", "1e400", "\"x\"", "[]", "{}", "true", "{\"a\":[", "\u{0}", "\\u0000", "\"\\ud800\"", "9223372036854775808"]

    static func updates(_ random: inout SplitMix) -> String? {
        var element = Array(update.utf8)
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let at = Int.random(in: 0..<element.count, using: &random)
            let span = min(element.count - at, Int.random(in: 0...8, using: &random))
            element.replaceSubrange(at..<(at + span), with: Array(mutations.randomElement(using: &random)!.utf8))
        }
        let batch = "[" + update + "," + String(decoding: element, as: UTF8.self) + "," + update.replacingOccurrences(of: "77", with: "78") + "]"
        guard let decoded = try? JSONDecoder().decode([Telegram.PolledUpdate].self, from: Data(batch.utf8)) else {
            return nil  // not JSON at all any more: the client reports a malformed answer, as it should
        }
        guard decoded.count == 3 else { return "\(decoded.count) elements decoded from 3" }
        guard decoded[0].update != nil, decoded[2].update?.update_id == 78 else { return "one bad element spoiled its neighbours" }
        return nil
    }
}
