// OpenAIClient: any OpenAI-compatible chat-completions endpoint.
//
// Owns: the wire types (`OpenAI`), the SSE decoder and `JSONValue`, the streaming
// `ChatCompletionsClient`, `CompletionRunner` (retries before the first text, the fallback model,
// the three deadlines, the answer size cap), `LLMError`, `TokenEstimator`.
// Imports: CurlHTTP, Support. Never imports: TelegramBotAPI, AssistantStore, or anything above.
