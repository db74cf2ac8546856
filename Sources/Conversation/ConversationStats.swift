/// What `/stats` reports for one conversation.
public struct ConversationStats: Sendable, Equatable {
    public var messages: Int
    public var requests: Int
    public var failures: Int
    public var promptTokens: Int
    public var completionTokens: Int
    public var usageEstimated: Bool
    public var costUSD: Double
    public var lastLatencyMs: Int?
    public var lastTTFTMs: Int?
    public var model: String
    /// Images and seconds of voice users sent.
    public var images: Int = 0
    public var audioSeconds: Int = 0

    /// The text both front ends show, cost with 6 decimals.
    public var text: String {
        let estimated = usageEstimated ? " (estimated)" : ""
        var lines = [
            "Model: \(model)",
            "Messages in memory: \(messages)",
            "Requests: \(requests)" + (failures > 0 ? " (\(failures) failed)" : ""),
            "Prompt tokens: \(promptTokens)\(estimated)",
            "Completion tokens: \(completionTokens)\(estimated)",
            "Estimated cost: $" + Self.sixDecimals(costUSD),
        ]
        if images > 0 || audioSeconds > 0 {
            lines.insert("Images: \(images), voice: \(Self.minutes(audioSeconds))", at: 3)
        }
        if let lastLatencyMs {
            lines.append("Last reply: \(lastLatencyMs) ms" + (lastTTFTMs.map { ", first token after \($0) ms" } ?? ""))
        }
        return lines.joined(separator: "\n")
    }

    /// Seconds of audio: "45 s" under a minute, else minutes with one decimal ("2.5 min").
    static func minutes(_ seconds: Int) -> String {
        if seconds < 60 { return "\(seconds) s" }
        let tenths = (seconds * 10 + 30) / 60
        return "\(tenths / 10).\(tenths % 10) min"
    }

    static func sixDecimals(_ value: Double) -> String {
        let micros = Int64((value * 1_000_000).rounded())
        let whole = micros / 1_000_000
        let fraction = String(micros % 1_000_000)
        return "\(whole)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }
}
