// OpenAIClient: any OpenAI-compatible chat-completions and audio-transcriptions endpoint.
//
// Owns: the wire types (`OpenAI`, images as content parts), the SSE decoder and `JSONValue`, the
// streaming `ChatCompletionsClient`, `TranscriptionClient` (multipart upload, the same retry rules), `CompletionRunner` (retries before the first text, the fallback model,
// the three deadlines, the answer size cap), `LLMError`, `TokenEstimator`.
// Imports: CurlHTTP, Support. Never imports: TelegramBotAPI, AssistantStore, or anything above.
