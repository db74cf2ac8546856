// TelegramFrontEnd: the Telegram bot, as a pipeline with one owner per step.
//
// UpdateIntake (poll, save, the update lifecycle, resume, migration) → ChatDispatcher (a mailbox
// per chat, `Albums` gathering an album) → AccessPolicy → MessageHandler → CommandHandler, or
// TurnReader (text, photos, voice, files, replies) → ReplyPipeline (permit, stop
// button, engine.reply, the `reply` log line) → ReplyPresenter (drafts, edits, finals through the
// one SendScheduler). StatusReporter and Maintenance run beside them; `TelegramBot` is the lot as
// services.
// Imports: Conversation, TelegramBotAPI, AssistantStore, Support, Logging, ServiceLifecycle.
// Never imports: OpenAIClient, CurlHTTP, GRDB.
