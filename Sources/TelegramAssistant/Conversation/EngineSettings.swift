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

    public init(_ config: AssistantConfig) {
        model = config.model
        fallbackModel = config.fallbackModel
        systemPrompt = config.systemPrompt
        temperature = config.temperature
        maxOutputTokens = config.maxOutputTokens
        maxHistoryMessages = config.maxHistoryMessages
        contextTokens = config.contextTokens
        inputPricePerMillion = config.inputPricePerMillion
        outputPricePerMillion = config.outputPricePerMillion
        summarizeHistory = config.summarizeHistory
    }

    /// The estimated cost in USD of a call with these token counts.
    public func cost(of usage: TokenUsage) -> Double {
        (Double(usage.promptTokens) * inputPricePerMillion + Double(usage.completionTokens) * outputPricePerMillion) / 1_000_000
    }
}
