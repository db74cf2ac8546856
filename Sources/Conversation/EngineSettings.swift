import OpenAIClient

/// The part of the configuration the conversation engine uses.
public struct EngineSettings: Sendable {
    public var model: String
    public var fallbackModel: String?
    public var systemPrompt: String
    public var temperature: Double
    public var maxOutputTokens: Int
    public var maxHistoryMessages: Int
    public var contextTokens: Int
    public var inputPricePerMillion: Double
    public var outputPricePerMillion: Double
    public var summarizeHistory: Bool
    /// Images go to the model (`VISION`); off, a placeholder goes instead.
    public var vision: Bool = true
    /// The largest image kept, in bytes (`IMAGE_MAX_KB`).
    public var maxImageBytes: Int = 5_120 * 1024
    /// The longest side of a photo size chosen from those Telegram offers (`IMAGE_MAX_SIDE`).
    public var maxImageSide: Int = 2_048
    /// What a minute of transcribed audio costs (`TRANSCRIPTION_PRICE_PER_MINUTE`).
    public var transcriptionPricePerMinute: Double = 0

    public init(
        model: String, fallbackModel: String?, systemPrompt: String, temperature: Double, maxOutputTokens: Int,
        maxHistoryMessages: Int, contextTokens: Int, inputPricePerMillion: Double, outputPricePerMillion: Double,
        summarizeHistory: Bool
    ) {
        self.model = model
        self.fallbackModel = fallbackModel
        self.systemPrompt = systemPrompt
        self.temperature = temperature
        self.maxOutputTokens = maxOutputTokens
        self.maxHistoryMessages = maxHistoryMessages
        self.contextTokens = contextTokens
        self.inputPricePerMillion = inputPricePerMillion
        self.outputPricePerMillion = outputPricePerMillion
        self.summarizeHistory = summarizeHistory
    }

    /// Models a conversation may switch to besides `extra`: the primary, the fallback, then `extra`.
    public func allowedModels(adding extra: [String]) -> [String] {
        var models = [model]
        if let fallbackModel { models.append(fallbackModel) }
        for model in extra where !models.contains(model) { models.append(model) }
        return models
    }

    /// The estimated cost in USD of a call with these token counts.
    public func cost(of usage: TokenUsage) -> Double {
        (Double(usage.promptTokens) * inputPricePerMillion + Double(usage.completionTokens) * outputPricePerMillion) / 1_000_000
    }
}
