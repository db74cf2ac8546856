extension Telegram.Update {
    /// The chat an update belongs to, if any.
    public var chatID: Int64? {
        message?.chat.id ?? stopped_message_generation?.chat.id
    }
}
