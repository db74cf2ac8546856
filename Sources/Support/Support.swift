// Support: small mechanisms every layer uses, each written once.
//
// Owns: `race` (an operation against a deadline, a stop button or a shutdown), `shielded` and
// `withCancellationDelay`, `Backoff`, `TokenBucket`, `Stopwatch` (time on an injected clock),
// `ChangeSignal`, `AsyncSemaphore`, `Secret`, `Duration` units.
// Never imports: anything of ours, or Foundation. Everything else may import it.
