import Foundation

/// Turns the Markdown that models write into `FormattedText`: bold, italic, strikethrough, inline
/// code, code blocks with their language, links, blockquotes and headings become entities; lists
/// become plain text bullets. Markup without a partner stays literal, so no answer can be lost to
/// formatting, and a half-streamed answer renders sensibly.
public enum MarkdownRenderer {
    public static func render(_ markdown: String) -> FormattedText {
        var output = FormattedText(text: "")
        let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? $0.dropLast() : $0
        }
        var index = 0
        var first = true
        func newline() {
            if !first { output.append("\n") }
            first = false
        }
        while index < lines.count {
            let line = lines[index]
            let trimmed = line.drop { $0 == " " }
            if trimmed.hasPrefix("```") {
                // A fenced code block, to the closing fence or the end (a block still streaming).
                let language = trimmed.dropFirst(3).trimmingCharacters(in: .whitespaces)
                var body: [Substring] = []
                index += 1
                while index < lines.count, !lines[index].drop(while: { $0 == " " }).hasPrefix("```") {
                    body.append(lines[index])
                    index += 1
                }
                index += 1  // the closing fence
                newline()
                let code = body.joined(separator: "\n")
                if code.isEmpty {
                    output.append(" ")  // Telegram rejects empty entities; keep the block visible
                } else {
                    output.wrap("pre", language: language.isEmpty ? nil : language) { $0.append(code) }
                }
                continue
            }
            if trimmed.hasPrefix(">") {
                var quoted: [Substring] = []
                while index < lines.count, lines[index].drop(while: { $0 == " " }).hasPrefix(">") {
                    var content = lines[index].drop { $0 == " " }.dropFirst()
                    if content.first == " " { content = content.dropFirst() }
                    quoted.append(content)
                    index += 1
                }
                newline()
                output.wrap("blockquote") { quote in
                    for (number, content) in quoted.enumerated() {
                        if number > 0 { quote.append("\n") }
                        quote.append(renderInline(content))
                    }
                }
                continue
            }
            newline()
            output.append(renderLine(line))
            index += 1
        }
        return output
    }

    /// One line outside code blocks and quotes: headings, bullets, rules, then inline markup.
    static func renderLine(_ line: Substring) -> FormattedText {
        let indent = line.prefix { $0 == " " || $0 == "\t" }
        let content = line.dropFirst(indent.count)
        if let heading = heading(content) {
            var output = FormattedText(text: String(indent))
            output.wrap("bold") { $0.append(renderInline(heading)) }
            return output
        }
        if let mark = content.first, mark == "-" || mark == "*" || mark == "_", content.allSatisfy({ $0 == mark }), content.count >= 3 {
            return FormattedText(text: String(indent) + "———")
        }
        for bullet in ["- ", "* ", "+ "] where content.hasPrefix(bullet) {
            var output = FormattedText(text: String(indent) + "• ")
            output.append(renderInline(content.dropFirst(2)))
            return output
        }
        var output = FormattedText(text: String(indent))
        output.append(renderInline(content))
        return output
    }

    static func heading(_ content: Substring) -> Substring? {
        let hashes = content.prefix { $0 == "#" }
        guard (1...6).contains(hashes.count), content.dropFirst(hashes.count).first == " " else { return nil }
        var text = content.dropFirst(hashes.count + 1)
        while text.last == "#" || text.last == " " { text = text.dropLast() }
        return text.isEmpty ? nil : text
    }

    /// Inline markup within one line.
    static func renderInline(_ source: Substring) -> FormattedText {
        var output = FormattedText(text: "")
        var plain = ""
        var index = source.startIndex
        func flush() {
            if !plain.isEmpty {
                output.append(plain)
                plain = ""
            }
        }
        while index < source.endIndex {
            let character = source[index]
            switch character {
            case "\\", "`", "[", "*", "_", "~":
                break
            default:
                // Most characters start no markup: no look-ahead for them (this runs for every
                // character of every draft).
                plain.append(character)
                index = source.index(after: index)
                continue
            }
            let rest = source[index...]
            if character == "\\", let next = source.index(index, offsetBy: 1, limitedBy: source.endIndex), next < source.endIndex,
                "\\`*_~[]()#>-+.!|{}".contains(source[next])
            {
                plain.append(source[next])  // an escaped character is literal
                index = source.index(after: next)
                continue
            }
            if character == "`", let (code, end) = codeSpan(rest) {
                flush()
                output.wrap("code") { $0.append(String(code)) }
                index = end
                continue
            }
            if character == "[", let (label, url, end) = link(rest) {
                flush()
                output.wrap("text_link", url: String(url)) { $0.append(renderInline(label)) }
                index = end
                continue
            }
            if let (type, inner, end) = emphasis(rest, after: index == source.startIndex ? nil : source[source.index(before: index)]) {
                flush()
                output.wrap(type) { $0.append(renderInline(inner)) }
                index = end
                continue
            }
            plain.append(character)
            index = source.index(after: index)
        }
        flush()
        return output
    }

    /// `` `code` `` with a closing run of the same length.
    static func codeSpan(_ rest: Substring) -> (Substring, Substring.Index)? {
        let ticks = rest.prefix { $0 == "`" }
        let body = rest[ticks.endIndex...]
        guard let close = body.range(of: String(ticks)) else { return nil }
        let code = body[..<close.lowerBound]
        guard !code.isEmpty, !code.allSatisfy({ $0 == " " }) else { return nil }
        return (code, close.upperBound)
    }

    /// `[label](url)` with a non-empty label and a URL without spaces.
    static func link(_ rest: Substring) -> (Substring, Substring, Substring.Index)? {
        guard let labelEnd = rest.firstIndex(of: "]") else { return nil }
        let label = rest[rest.index(after: rest.startIndex)..<labelEnd]
        let afterLabel = rest[rest.index(after: labelEnd)...]
        guard !label.isEmpty, afterLabel.first == "(", let close = afterLabel.firstIndex(of: ")") else { return nil }
        let url = afterLabel[afterLabel.index(after: afterLabel.startIndex)..<close]
        let scheme = url.prefix { $0 != ":" }
        guard !url.isEmpty, !url.contains(" "), scheme.count < url.count,
            ["http", "https", "tg", "mailto"].contains(scheme.lowercased())
        else { return nil }
        return (label, url, afterLabel.index(after: close))
    }

    /// `**bold**`, `__bold__`, `~~strike~~`, `*italic*`, `_italic_`, when the closing delimiter exists.
    static func emphasis(_ rest: Substring, after previous: Character?) -> (String, Substring, Substring.Index)? {
        let candidates: [(String, String)] = [("**", "bold"), ("__", "bold"), ("~~", "strikethrough"), ("*", "italic"), ("_", "italic")]
        for (delimiter, type) in candidates where rest.hasPrefix(delimiter) {
            let body = rest.dropFirst(delimiter.count)
            // The opening delimiter must touch text: "a * b" is not emphasis.
            guard let first = body.first, !first.isWhitespace, !body.hasPrefix(delimiter.prefix(1)) else { return nil }
            if delimiter.first == "_", let previous, previous.isLetter || previous.isNumber { return nil }  // snake_case
            var search = body.startIndex
            while let close = body[search...].range(of: delimiter) {
                let inner = body[body.startIndex..<close.lowerBound]
                let after = close.upperBound < body.endIndex ? body[close.upperBound] : nil
                let touches = inner.last.map { !$0.isWhitespace } ?? false
                let boundary = delimiter.first != "_" || !(after?.isLetter ?? false || after?.isNumber ?? false)
                // A single delimiter must not be half of a double one ("*a**").
                let single = delimiter.count > 1 || after != delimiter.first
                if !inner.isEmpty, touches, boundary, single {
                    return (type, inner, close.upperBound)
                }
                search = close.upperBound
            }
            return nil
        }
        return nil
    }
}

extension MarkdownRenderer {
    /// Renders an answer that only grows (a streaming reply's drafts) without rendering its
    /// finished paragraphs again: text up to a blank line outside any code block renders the same
    /// whatever follows, so its rendering is kept and only the rest is rendered each time.
    public struct Incremental: Sendable {
        /// The source up to the last blank line taken so far (ending in "\n\n"), and its rendering
        /// without that blank line's final "\n".
        private var head = ""
        private var rendered = FormattedText(text: "")

        public init() {}

        public mutating func render(_ markdown: String) -> FormattedText {
            if !markdown.utf8.starts(with: head.utf8) { self = Incremental() }  // not a continuation: start over
            let bytes = Array(markdown.utf8)
            if let boundary = Self.lastBoundary(bytes, from: head.utf8.count), boundary > head.utf8.count {
                // The paragraphs between the old head and the new boundary, without its final "\n".
                let segment = String(decoding: bytes[head.utf8.count..<(boundary - 1)], as: UTF8.self)
                if head.isEmpty {
                    rendered = MarkdownRenderer.render(segment)
                } else {
                    rendered.append("\n")
                    rendered.append(MarkdownRenderer.render(segment))
                }
                head = String(decoding: bytes[..<boundary], as: UTF8.self)
            }
            guard !head.isEmpty else { return MarkdownRenderer.render(markdown) }
            var output = rendered
            output.append("\n")
            output.append(MarkdownRenderer.render(String(decoding: bytes[head.utf8.count...], as: UTF8.self)))
            return output
        }

        /// The end (just past "\n\n") of the last empty line after `start` with every code fence
        /// before it closed, scanning whole lines from `start` (itself such a boundary, or 0).
        static func lastBoundary(_ bytes: [UInt8], from start: Int) -> Int? {
            var fenceOpen = false
            var best: Int?
            var lineStart = start
            var index = start
            while index < bytes.count {
                // A line ends at "\n" alone: "\r\n" is one character to Swift's String, and the
                // renderer splits by characters.
                guard bytes[index] == 0x0A, index == 0 || bytes[index - 1] != 0x0D else {
                    index += 1
                    continue
                }
                // A line [lineStart, index): a fence when it starts with ``` after spaces.
                var first = lineStart
                while first < index, bytes[first] == 0x20 { first += 1 }
                if index - first >= 3, bytes[first] == 0x60, bytes[first + 1] == 0x60, bytes[first + 2] == 0x60 { fenceOpen.toggle() }
                // An empty line after it ("\n\n") outside a fence is a boundary.
                if !fenceOpen, lineStart == index, index > start {
                    best = index + 1
                }
                lineStart = index + 1
                index += 1
            }
            return best
        }
    }
}
