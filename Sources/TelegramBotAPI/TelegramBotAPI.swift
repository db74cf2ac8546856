// TelegramBotAPI: the Telegram Bot API as this bot uses it.
//
// Owns: the wire types (`Telegram`), `BotAPIClient` (no URL of it ever reaches a log: the token is
// in every one), `TelegramError`, `SendScheduler` (the flood budgets), `TelegramSender` (retries,
// `retry_after`, plain-text fallback), `MarkdownRenderer` and `FormattedText` (entities in UTF-16,
// splitting at 4096 code points).
// Imports: CurlHTTP, Support, Logging. Never imports: OpenAIClient, AssistantStore, or anything above.
