import Foundation

extension Telegram.Message {
    /// The text, or a media message's caption, with its entities.
    var textAndEntities: (text: String, entities: [Telegram.MessageEntity])? {
        if let text { return (text, entities ?? []) }
        if let caption { return (caption, caption_entities ?? []) }
        return nil
    }

    /// Whether the text or caption @mentions `username`, by Telegram's own `mention` entities: a
    /// whole mention, so `@bot` is not found in `@bot_fan`, and never in a code span or a URL.
    public func mentions(_ username: String) -> Bool {
        guard !username.isEmpty, let (text, entities) = textAndEntities else { return false }
        let units = Array(text.utf16)
        return entities.contains { Self.isMention(of: username, $0, in: units) }
    }

    /// The text with every mention of `username` taken out and the spaces around it tidied:
    /// "hey @bot what's up" becomes "hey what's up".
    public func text(withoutMentionsOf username: String) -> String {
        guard let (text, entities) = textAndEntities else { return "" }
        let units = Array(text.utf16)
        let mentions = entities.filter { Self.isMention(of: username, $0, in: units) }.sorted { $0.offset > $1.offset }
        var kept = units
        let space: UTF16.CodeUnit = 0x20
        for mention in mentions {
            let start = mention.offset
            kept.removeSubrange(start..<(start + mention.length))
            // Only the gap a removed mention leaves behind is closed; other spacing stays.
            if start < kept.count, kept[start] == space, start == 0 || kept[start - 1] == space || kept[start - 1] == 0x0A {
                kept.remove(at: start)
            }
        }
        return String(decoding: kept, as: UTF16.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func isMention(of username: String, _ entity: Telegram.MessageEntity, in units: [UTF16.CodeUnit]) -> Bool {
        guard entity.type == "mention", entity.offset >= 0, entity.length > 1, entity.offset + entity.length <= units.count else { return false }
        let mention = String(decoding: units[entity.offset..<(entity.offset + entity.length)], as: UTF16.self)
        return mention.lowercased() == "@" + username.lowercased()
    }
}
