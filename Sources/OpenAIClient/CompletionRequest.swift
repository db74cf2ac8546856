/// What to ask for in one completion.
public struct CompletionRequest: Sendable {
    public var messages: [OpenAI.Message]
    public var model: String
    public var fallbackModel: String?
    public var temperature: Double
    public var maxOutputTokens: Int
    /// Once the answer's text has begun, the rest is handed over at most this often: a front end
    /// that shows it every quarter second needs no more wake-ups than that.
    public var deliveryInterval: Duration = ChatCompletionsClient.deliveryInterval

    public init(messages: [OpenAI.Message], model: String, fallbackModel: String?, temperature: Double, maxOutputTokens: Int) {
        self.messages = messages
        self.model = model
        self.fallbackModel = fallbackModel
        self.temperature = temperature
        self.maxOutputTokens = maxOutputTokens
    }
}
