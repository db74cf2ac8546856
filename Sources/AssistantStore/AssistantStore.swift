// AssistantStore: the bot's memory, behind its own API (`Store`), and its default engine, SQLite through GRDB.
//
// Owns: the schema and its named, append-only migrations; conversations and turns with their
// totals; the update ledger (each update as raw JSON plus its chat id, its status and a pending
// reply); retention and compaction; the instance lock. Its row types are its own.
// Imports: GRDB, Support. Never imports: OpenAIClient, TelegramBotAPI, CurlHTTP, or anything above:
// it knows neither wire protocol.
