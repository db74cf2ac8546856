/// A deliberately conservative token count for when a server reports no usage, and for trimming.
///
/// Roughly four ASCII characters make a token in English; other scripts and emoji take about one
/// token per character or more, so every non-ASCII scalar counts as one. Each message also carries
/// a few tokens of framing.
public enum TokenEstimator {
    public static let perMessageOverhead = 4

    public static func estimate(_ text: String) -> Int {
        var ascii = 0
        var other = 0
        for scalar in text.unicodeScalars {
            if scalar.isASCII { ascii += 1 } else { other += 1 }
        }
        return (ascii + 3) / 4 + other
    }

    public static func estimate(_ messages: [OpenAI.Message]) -> Int {
        messages.reduce(3) { total, message in
            total + estimate(message.content) + perMessageOverhead + message.images.reduce(0) { $0 + estimate($1) }
        }
    }

    /// An image's tokens as OpenAI counts them at full detail: scaled to fit 2048 × 2048, then so its
    /// short side is at most 768 pixels, then 170 tokens per 512-pixel tile plus 85. Other providers
    /// count differently but in the same range; an image of unknown size counts as 1024 × 1024 (765).
    public static func estimate(_ image: OpenAI.Image) -> Int {
        imageTokens(width: image.width ?? 1024, height: image.height ?? 1024)
    }

    public static func imageTokens(width: Int, height: Int) -> Int {
        var (w, h) = (Double(max(1, width)), Double(max(1, height)))
        let fit = min(1, 2048 / max(w, h))
        (w, h) = (w * fit, h * fit)
        let short = min(1, 768 / min(w, h))
        (w, h) = (w * short, h * short)
        let tiles = Int((w / 512).rounded(.up)) * Int((h / 512).rounded(.up))
        return 85 + 170 * tiles
    }
}
