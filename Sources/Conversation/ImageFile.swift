/// What an image file is, read from its first bytes: the formats vision models take (JPEG, PNG,
/// GIF, WebP) and the size in pixels, which the token estimate needs. Nothing is decoded.
public struct ImageFile: Sendable, Equatable {
    public var mimeType: String
    public var width: Int
    public var height: Int

    /// Nil when `bytes` are not one of the four formats (or their header is cut short).
    public init?(_ bytes: [UInt8]) {
        func be16(_ at: Int) -> Int { Int(bytes[at]) << 8 | Int(bytes[at + 1]) }
        func le16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func le24(_ at: Int) -> Int { le16(at) | Int(bytes[at + 2]) << 16 }
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + prefix.count && Array(bytes[offset..<(offset + prefix.count)]) == prefix
        }
        var size: (Int, Int)?
        if starts([0xFF, 0xD8, 0xFF]) {
            mimeType = "image/jpeg"
            // Walk the segments to the frame header (SOF0…SOF15 without DHT, JPG and DAC).
            var index = 2
            while index + 9 < bytes.count {
                guard bytes[index] == 0xFF else { break }
                let marker = bytes[index + 1]
                if marker == 0xFF { index += 1; continue }  // fill byte
                if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) { index += 2; continue }
                if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                    size = (be16(index + 7), be16(index + 5))
                    break
                }
                let length = be16(index + 2)
                guard length >= 2 else { break }
                index += 2 + length
            }
        } else if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), bytes.count >= 24, starts(Array("IHDR".utf8), at: 12) {
            mimeType = "image/png"
            size = (be16(16) << 16 | be16(18), be16(20) << 16 | be16(22))
        } else if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)), bytes.count >= 10 {
            mimeType = "image/gif"
            size = (le16(6), le16(8))
        } else if starts(Array("RIFF".utf8)), starts(Array("WEBP".utf8), at: 8), bytes.count >= 30 {
            mimeType = "image/webp"
            if starts(Array("VP8 ".utf8), at: 12) {
                size = (le16(26) & 0x3FFF, le16(28) & 0x3FFF)
            } else if starts(Array("VP8L".utf8), at: 12) {
                let bits = Int(bytes[21]) | Int(bytes[22]) << 8 | Int(bytes[23]) << 16 | Int(bytes[24]) << 24
                size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            } else if starts(Array("VP8X".utf8), at: 12) {
                size = (le24(24) + 1, le24(27) + 1)
            }
        } else {
            return nil
        }
        guard let (width, height) = size, width > 0, height > 0 else { return nil }
        self.width = width
        self.height = height
    }

    /// The attachment a turn carries for this image.
    public func attachment(_ bytes: [UInt8], sourceID: String? = nil) -> Attachment {
        Attachment(kind: .image, mimeType: mimeType, data: bytes, width: width, height: height, sourceID: sourceID)
    }
}
