extension FormattedText {
    /// Splits into parts of at most `limit` code points each, cutting at the last paragraph break,
    /// else line break, else sentence end, else space that fits, and only as a last resort inside a
    /// word (never inside a character). An entity cut across parts continues in the next part, so a
    /// code block cut in two is closed at the end of one message and reopened in the next.
    public func split(limit: Int = FormattedText.maxCodePoints) -> [FormattedText] {
        var parts: [FormattedText] = []
        var start = text.startIndex
        while start < text.endIndex {
            // Skip the separators a cut leaves at the start of a part.
            while start < text.endIndex, text[start] == "\n" || text[start] == " " { start = text.index(after: start) }
            guard start < text.endIndex else { break }
            let end = Self.cut(text, from: start, limit: limit)
            var partEnd = end
            // Trailing separators go too.
            while partEnd > start, text[text.index(before: partEnd)] == "\n" || text[text.index(before: partEnd)] == " " {
                partEnd = text.index(before: partEnd)
            }
            if partEnd > start { parts.append(slice(start..<partEnd)) }
            start = end
        }
        return parts.isEmpty ? [self] : parts
    }

    /// The end of the next part starting at `start`.
    private static func cut(_ text: String, from start: String.Index, limit: Int) -> String.Index {
        var count = 0
        var index = start
        var lastParagraph: String.Index?
        var lastLine: String.Index?
        var lastSentence: String.Index?
        var lastSpace: String.Index?
        while index < text.endIndex {
            let character = text[index]
            let size = character.unicodeScalars.count
            if count + size > limit { break }
            count += size
            let next = text.index(after: index)
            if character == "\n" {
                if index > start, text[text.index(before: index)] == "\n" { lastParagraph = next }
                lastLine = next
            } else if character == " " {
                if index > start, ".!?".contains(text[text.index(before: index)]) { lastSentence = next }
                lastSpace = next
            }
            index = next
        }
        if index == text.endIndex { return index }
        // Prefer a natural break unless it would leave a tiny part.
        let minimum = limit / 4
        for candidate in [lastParagraph, lastLine, lastSentence, lastSpace] {
            if let candidate, text.unicodeScalars[start..<candidate].count >= minimum { return candidate }
        }
        return index == start ? text.index(after: start) : index
    }

    /// The text in `range` with the entities that overlap it, clipped and re-based.
    private func slice(_ range: Range<String.Index>) -> FormattedText {
        let lower = text.utf16.distance(from: text.startIndex, to: range.lowerBound)
        let upper = text.utf16.distance(from: text.startIndex, to: range.upperBound)
        let clipped = entities.compactMap { entity -> Telegram.MessageEntity? in
            let start = max(entity.offset, lower)
            let end = min(entity.offset + entity.length, upper)
            guard end > start else { return nil }
            var part = entity
            part.offset = start - lower
            part.length = end - start
            return part
        }
        return FormattedText(text: String(text[range]), entities: clipped)
    }
}
