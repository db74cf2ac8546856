/// Text ready for Telegram: plain text plus formatting entities (offsets in UTF-16 code units),
/// sent without `parse_mode`, so there is nothing to escape and nothing Telegram can fail to parse.
public struct FormattedText: Codable, Sendable, Equatable {
    public var text: String
    public var entities: [Telegram.MessageEntity]

    public init(text: String, entities: [Telegram.MessageEntity] = []) {
        self.text = text
        self.entities = entities
    }

    /// Telegram's limit for one message, in Unicode code points after entity parsing.
    public static let maxCodePoints = 4096

    /// Appends `other`, shifting its entities.
    public mutating func append(_ other: FormattedText) {
        let shift = text.utf16.count
        text += other.text
        entities += other.entities.map {
            var entity = $0
            entity.offset += shift
            return entity
        }
    }

    public mutating func append(_ plain: String) {
        text += plain
    }

    /// Marks everything appended by `body` with an entity of `type` (dropped when it covers nothing).
    public mutating func wrap(_ type: String, url: String? = nil, language: String? = nil, _ body: (inout FormattedText) -> Void) {
        let start = text.utf16.count
        let index = entities.count
        body(&self)
        let length = text.utf16.count - start
        guard length > 0 else { return }
        // The outer entity goes before the ones it contains, as Telegram lists them.
        entities.insert(Telegram.MessageEntity(type: type, offset: start, length: length, url: url, language: language), at: index)
    }
}
