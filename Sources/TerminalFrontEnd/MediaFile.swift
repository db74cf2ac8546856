import Foundation

/// The argument of `/image` and `/voice`: a path (quoted when it has spaces), then the rest.
struct MediaFile: Sendable {
    var path: String
    /// What follows the path: the question about an image.
    var rest: String

    init?(_ argument: String) {
        let trimmed = argument.trimmingCharacters(in: .whitespaces)
        if let quote = trimmed.first, quote == "\"" || quote == "'" {
            let body = trimmed.dropFirst()
            guard let end = body.firstIndex(of: quote) else { return nil }
            path = String(body[..<end])
            rest = body[body.index(after: end)...].trimmingCharacters(in: .whitespaces)
        } else {
            let head = trimmed.prefix { !$0.isWhitespace }
            path = String(head)
            rest = trimmed.dropFirst(head.count).trimmingCharacters(in: .whitespaces)
        }
        path = (path as NSString).expandingTildeInPath
        guard !path.isEmpty else { return nil }
    }

    /// A recording's MIME type by its extension.
    static func audioType(_ name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "ogg", "oga", "opus": "audio/ogg"
        case "mp3", "mpga", "mpeg": "audio/mpeg"
        case "m4a", "mp4": "audio/mp4"
        case "wav": "audio/wav"
        case "webm": "audio/webm"
        case "flac": "audio/flac"
        default: "application/octet-stream"
        }
    }

    /// An Ogg Opus file's length: the last page's granule position at Opus's 48 kHz. Nil for other
    /// formats (their length is then not checked before the upload).
    static func oggSeconds(_ bytes: [UInt8]) -> Int? {
        guard bytes.count > 27, bytes.starts(with: Array("OggS".utf8)) else { return nil }
        var index = bytes.count - 27
        while index >= 0 {
            if bytes[index] == 0x4F, bytes[index + 1] == 0x67, bytes[index + 2] == 0x67, bytes[index + 3] == 0x53 {
                var granule: UInt64 = 0
                for offset in 0..<8 { granule |= UInt64(bytes[index + 6 + offset]) << (8 * UInt64(offset)) }
                return granule == UInt64.max ? nil : Int((granule + 47_999) / 48_000)
            }
            index -= 1
        }
        return nil
    }
}
