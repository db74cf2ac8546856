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
            guard let end = Self.cut(text, from: start, limit: limit) else {
                // One character longer than a whole message (a letter under thousands of combining
                // marks) could never be sent: such clusters are clipped, then the text is split.
                return clippingLongClusters(maxScalars: min(256, limit)).split(limit: limit)
            }
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

    /// The end of the next part starting at `start`; nil when the character at `start` alone is
    /// longer than `limit`.
    private static func cut(_ text: String, from start: String.Index, limit: Int) -> String.Index? {
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
        return index == start ? nil : index
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

    /// The text with every grapheme cluster of more than `maxScalars` code points cut down to that
    /// many; entities are moved to match (their UTF-16 bounds shrink with the clusters they cover).
    func clippingLongClusters(maxScalars: Int) -> FormattedText {
        guard text.unicodeScalars.count > maxScalars, text.contains(where: { $0.unicodeScalars.count > maxScalars }) else { return self }
        struct Clip {
            var oldStart: Int
            var oldEnd: Int
            var newLength: Int
            /// UTF-16 units removed before this cluster.
            var removedBefore: Int
        }
        var result = ""
        var clips: [Clip] = []
        var position = 0
        var removed = 0
        for character in text {
            let length = character.utf16.count
            if character.unicodeScalars.count > maxScalars {
                var kept = String.UnicodeScalarView()
                kept.append(contentsOf: character.unicodeScalars.prefix(maxScalars))
                let short = String(kept)
                result += short
                clips.append(Clip(oldStart: position, oldEnd: position + length, newLength: short.utf16.count, removedBefore: removed))
                removed += length - short.utf16.count
            } else {
                result.append(character)
            }
            position += length
        }
        func moved(_ offset: Int) -> Int {
            var removedBefore = 0
            for clip in clips {
                if offset >= clip.oldEnd {
                    removedBefore = clip.removedBefore + (clip.oldEnd - clip.oldStart - clip.newLength)
                } else if offset > clip.oldStart {
                    return clip.oldStart - clip.removedBefore + min(offset - clip.oldStart, clip.newLength)
                } else {
                    break
                }
            }
            return offset - removedBefore
        }
        let entities = entities.compactMap { entity -> Telegram.MessageEntity? in
            let start = moved(entity.offset)
            let end = moved(entity.offset + entity.length)
            guard end > start else { return nil }
            var shifted = entity
            shifted.offset = start
            shifted.length = end - start
            return shifted
        }
        return FormattedText(text: result, entities: entities)
    }
}
