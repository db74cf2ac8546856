// TerminalFrontEnd: `telegram-assistant chat`, the same engine in a terminal.
//
// Owns: `TerminalChat` (the read-answer loop and its wording), `TerminalChatService`, `StandardInput`.
// Imports: Conversation, Logging, ServiceLifecycle. Never imports: TelegramBotAPI, TelegramFrontEnd,
// OpenAIClient, AssistantStore, CurlHTTP.
