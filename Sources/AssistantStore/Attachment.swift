import Foundation
import GRDB

/// What a turn was made from besides its words: an image sent to the model with the turn, or a
/// voice note whose transcript is the turn's text.
public struct Attachment: Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, DatabaseValueConvertible {
        case image, audio
    }

    public var kind: Kind
    /// `image/jpeg`, `audio/ogg`, …
    public var mimeType: String
    /// The image's bytes; nil for audio (only its transcript is kept).
    public var data: [UInt8]?
    public var width: Int?
    public var height: Int?
    /// An audio's length.
    public var seconds: Int?
    public var transcript: String?
    /// Where it came from (Telegram's `file_unique_id`), so a reply to it reuses this copy.
    public var sourceID: String?
    /// The model said it cannot see images: a placeholder goes instead.
    public var withheld: Bool

    public init(
        kind: Kind, mimeType: String, data: [UInt8]? = nil, width: Int? = nil, height: Int? = nil, seconds: Int? = nil,
        transcript: String? = nil, sourceID: String? = nil, withheld: Bool = false
    ) {
        self.kind = kind
        self.mimeType = mimeType
        self.data = data
        self.width = width
        self.height = height
        self.seconds = seconds
        self.transcript = transcript
        self.sourceID = sourceID
        self.withheld = withheld
    }
}

/// An attachment's row.
struct AttachmentRecord: Codable, FetchableRecord, TableRecord {
    static let databaseTableName = "attachment"

    var id: Int64
    var messageID: Int64
    var kind: Attachment.Kind
    var mimeType: String
    var data: Data?
    var width: Int?
    var height: Int?
    var seconds: Int?
    var transcript: String?
    var sourceID: String?
    var withheld: Bool

    enum CodingKeys: String, CodingKey {
        case id, kind, data, width, height, seconds, transcript, withheld
        case messageID = "message_id"
        case mimeType = "mime_type"
        case sourceID = "source_id"
    }

    var attachment: Attachment {
        Attachment(
            kind: kind, mimeType: mimeType, data: data.map { Array($0) }, width: width, height: height, seconds: seconds,
            transcript: transcript, sourceID: sourceID, withheld: withheld)
    }
}
