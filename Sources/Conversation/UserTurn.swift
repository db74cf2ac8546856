import AssistantStore

/// What the front ends call an attachment: the store's, so a turn and its images are saved as one.
public typealias Attachment = AssistantStore.Attachment

/// What a user said, as the engine saves and answers it: the text (with a voice note, its
/// transcript) and the images or audio it came with.
public struct UserTurn: Sendable, Equatable, ExpressibleByStringInterpolation {
    public var text: String
    public var attachments: [Attachment]
    /// What turning the input into text cost (a transcription), added to the conversation's cost.
    public var inputCostUSD: Double

    public init(_ text: String, attachments: [Attachment] = [], inputCostUSD: Double = 0) {
        self.text = text
        self.attachments = attachments
        self.inputCostUSD = inputCostUSD
    }

    public init(stringLiteral text: String) {
        self.init(text)
    }

    public init(stringInterpolation: DefaultStringInterpolation) {
        self.init(String(stringInterpolation: stringInterpolation))
    }

    public var images: Int { attachments.filter { $0.kind == .image }.count }

    /// What stands in for an image the model does not get to see.
    static let withheldImage = "[An image was here; the model could not see it.]"
}
