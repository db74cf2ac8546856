// TelegramAssistant: configuration and the composition root; the only module that knows every other.
//
// Owns: `AssistantConfig` (every variable checked at start, every problem in one message),
// `Assistant` (builds the graph, with `Overrides` for tests and benchmarks), `AssistantApp` (the
// subcommands end to end), `Checkup`, the JSON log handler.
// Nothing of ours imports it but the executable, the tests and the benchmarks.
