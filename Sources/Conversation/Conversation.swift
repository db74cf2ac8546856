// Conversation: the engine both front ends share.
//
// Owns: `ConversationEngine` (save the user's turn, build the trimmed request, stream the answer,
// save the outcome, summaries), `HistoryWindow`, `UserTurn` (words with images or a recording),
// `ImageFile` (what an image is, from its header), `Transcriber` and `TranscriptionError`,
// `ReplyOutcome` and its notices, `Command` and the `CommandHandler` the front ends share,
// `ConversationStats`.
// Imports: OpenAIClient, AssistantStore (its API, never GRDB), Support, Logging.
// Never imports: TelegramBotAPI, CurlHTTP, GRDB, or a front end.
