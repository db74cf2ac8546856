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

@Suite(.timeLimit(.minutes(2))) struct MarkdownRendererTests {
    func entity(_ type: String, _ offset: Int, _ length: Int, url: String? = nil, language: String? = nil) -> Telegram.MessageEntity {
        .init(type: type, offset: offset, length: length, url: url, language: language)
    }

    /// Drafts render only what changed: for every prefix of answers made of paragraphs, code
    /// blocks (with blank lines inside), quotes, lists and inline markup, streamed in random
    /// pieces, the incremental rendering equals rendering the whole text.
    @Test func incrementalRenderingEqualsTheWholeRender() {
        let pieces = [
            "Here is **bold** and `code`.", "\n\n", "```swift\nlet a = 1\n\nlet b = 2\n```", "\n", "> a quote\n> more", "\n\n",
            "- item *one*\n- item two", "\n\n\n", "# Heading", "\n", "[a link](https://example.com)", " ~~gone~~ ", "\n\n",
            "```\nunclosed\n\nstill code", "\n\nafter", "é😀 ", "_x_", "\r\n\r\n", "1. one\n2. two",
        ]
        var random = SplitMix(seed: 7)
        for _ in 0..<200 {
            var answer = ""
            for _ in 0..<Int.random(in: 1...12, using: &random) { answer += pieces.randomElement(using: &random)! }
            var incremental = MarkdownRenderer.Incremental()
            var shown = ""
            let characters = Array(answer)
            var index = 0
            while index < characters.count {
                let step = Int.random(in: 1...9, using: &random)
                shown += String(characters[index..<min(characters.count, index + step)])
                index += step
                #expect(incremental.render(shown) == MarkdownRenderer.render(shown), "\(shown.debugDescription)")
            }
        }
        // A text that is no continuation starts over.
        var incremental = MarkdownRenderer.Incremental()
        _ = incremental.render("first\n\nsecond")
        #expect(incremental.render("other\n\ntext") == MarkdownRenderer.render("other\n\ntext"))
    }

    @Test func inlineMarkupBecomesEntities() {
        let rendered = MarkdownRenderer.render("Use **bold**, *italic*, ~~gone~~ and `code`.")
        #expect(rendered.text == "Use bold, italic, gone and code.")
        #expect(rendered.entities == [entity("bold", 4, 4), entity("italic", 10, 6), entity("strikethrough", 18, 4), entity("code", 27, 4)])
    }

    @Test func offsetsCountUTF16CodeUnits() {
        let rendered = MarkdownRenderer.render("👋🏽 **Grüße** 日本")
        #expect(rendered.text == "👋🏽 Grüße 日本")
        // 👋🏽 is four UTF-16 units, then a space.
        #expect(rendered.entities == [entity("bold", 5, 5)])
    }

    @Test func codeBlocksKeepTheirLanguageAndContentVerbatim() {
        let rendered = MarkdownRenderer.render("Here:\n```swift\nlet a = b * c * d\nprint(\"**x**\")\n```\nDone.")
        #expect(rendered.text == "Here:\nlet a = b * c * d\nprint(\"**x**\")\nDone.")
        #expect(rendered.entities == [entity("pre", 6, 32, language: "swift")])
    }

    @Test func anUnclosedFenceStillRendersAsCode() {
        let rendered = MarkdownRenderer.render("```python\nprint(1)")
        #expect(rendered.text == "print(1)")
        #expect(rendered.entities == [entity("pre", 0, 8, language: "python")])
    }

    @Test func linksHeadingsQuotesAndLists() {
        let rendered = MarkdownRenderer.render("# Title\n> quoted **text**\n> more\n- one\n* two\n1. three\nSee [the docs](https://example.org/a_b).")
        #expect(rendered.text == "Title\nquoted text\nmore\n• one\n• two\n1. three\nSee the docs.")
        #expect(
            rendered.entities == [
                entity("bold", 0, 5), entity("blockquote", 6, 16), entity("bold", 13, 4),
                entity("text_link", 48, 8, url: "https://example.org/a_b"),
            ])
    }

    @Test func unbalancedMarkupStaysLiteral() {
        for source in ["2 * 3 = 6", "a **bold start", "snake_case_name and __init__", "price: $5 * 2*", "[not a link](no spaces allowed)", "`unclosed", "**", "a *  * b", "~~"] {
            let rendered = MarkdownRenderer.render(source)
            if source == "snake_case_name and __init__" {
                #expect(rendered.text == "snake_case_name and init")
            } else {
                #expect(rendered.text == source, "\(source)")
                #expect(rendered.entities.isEmpty, "\(source)")
            }
        }
    }

    @Test func escapedCharactersAreLiteral() {
        let rendered = MarkdownRenderer.render(#"not \*italic\* here"#)
        #expect(rendered.text == "not *italic* here")
        #expect(rendered.entities.isEmpty)
    }

    @Test func nestedEmphasis() {
        let rendered = MarkdownRenderer.render("**bold and *italic* inside**")
        #expect(rendered.text == "bold and italic inside")
        #expect(rendered.entities == [entity("bold", 0, 22), entity("italic", 9, 6)])
    }

    @Test func anyInputGivesEntitiesInsideTheText() {
        let pieces = ["**", "*", "_", "__", "~~", "`", "```", "```js\n", "[", "](", "https://x.y", ")", "> ", "# ", "- ", "\n", "\n\n", " ", "word", "👋🏽", "日本", "é", "\\"]
        var generator = SplitMix(seed: 2024)
        for _ in 0..<2000 {
            let count = Int(generator.next() % 25)
            let source = (0..<count).map { _ in pieces[Int(generator.next() % UInt64(pieces.count))] }.joined()
            let rendered = MarkdownRenderer.render(source)
            let units = rendered.text.utf16.count
            for entity in rendered.entities {
                #expect(entity.length > 0, "\(source.debugDescription)")
                #expect(entity.offset >= 0 && entity.offset + entity.length <= units, "\(source.debugDescription)")
            }
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct SplitTests {
    @Test func shortTextIsOnePart() {
        let text = FormattedText(text: "hello", entities: [])
        #expect(text.split() == [text])
    }

    @Test func partsStayWithinTheLimitAndLoseNothingButSeparators() {
        var generator = SplitMix(seed: 5)
        for _ in 0..<100 {
            var source = ""
            for _ in 0..<Int(generator.next() % 400) {
                switch generator.next() % 6 {
                case 0: source += "\n\n"
                case 1: source += ". "
                case 2: source += "👋🏽"
                case 3: source += String(repeating: "x", count: Int(generator.next() % 300))
                default: source += "word "
                }
            }
            let rendered = MarkdownRenderer.render(source)
            let parts = rendered.split(limit: 500)
            for part in parts {
                #expect(part.text.unicodeScalars.count <= 500)
                #expect(!part.text.isEmpty)
                for entity in part.entities { #expect(entity.offset + entity.length <= part.text.utf16.count) }
            }
            let squeeze: (String) -> String = { $0.filter { $0 != "\n" && $0 != " " } }
            #expect(squeeze(parts.map(\.text).joined()) == squeeze(rendered.text))
        }
    }

    @Test func cutsAtParagraphsFirst() {
        let paragraph = String(repeating: "a", count: 300)
        let text = FormattedText(text: [paragraph, paragraph, paragraph].joined(separator: "\n\n"))
        let parts = text.split(limit: 700)
        #expect(parts.map(\.text) == [paragraph + "\n\n" + paragraph, paragraph])
    }

    @Test func aCodeBlockCutAcrossPartsIsClosedAndReopened() {
        let code = (1...200).map { "let line\($0) = \($0)" }.joined(separator: "\n")
        let rendered = MarkdownRenderer.render("Intro\n```swift\n\(code)\n```\nOutro")
        let parts = rendered.split(limit: 1500)
        #expect(parts.count > 2)
        let pres = parts.flatMap { part in part.entities.filter { $0.type == "pre" } }
        #expect(pres.count == parts.count)
        #expect(pres.allSatisfy { $0.language == "swift" })
    }

    @Test func neverCutsInsideACharacter() {
        let text = FormattedText(text: String(repeating: "👋🏽", count: 3000))
        let parts = text.split(limit: 4096)
        #expect(parts.allSatisfy { $0.text.unicodeScalars.count <= 4096 })
        #expect(parts.map(\.text).joined() == text.text)
    }
}
