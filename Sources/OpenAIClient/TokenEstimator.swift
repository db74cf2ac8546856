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
        messages.reduce(3) { $0 + estimate($1.content) + perMessageOverhead }
    }
}
