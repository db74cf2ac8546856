import Logging

/// Long-polls Telegram and hands over each new update exactly once.
///
/// Updates are saved (with the next offset) before the next getUpdates confirms them to Telegram,
/// so a crash between the two only makes Telegram send them again, and the saved copy says they
/// were already seen. Network errors and 5xx back off with jitter; a 409 (another instance, or a
/// webhook) is logged clearly and backed off; a rejected token ends the poller.
public struct UpdatePoller: Sendable {
    let client: BotAPIClient
    let store: Store
    let pollTimeout: Int
    let logger: Logger
    let clock: any Clock<Duration>
    let random: @Sendable () -> Double

    public init(
        client: BotAPIClient, store: Store, pollTimeout: Int, logger: Logger, clock: any Clock<Duration> = ContinuousClock(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.client = client
        self.store = store
        self.pollTimeout = pollTimeout
        self.logger = logger
        self.clock = clock
        self.random = random
    }

    /// Polls until cancelled, calling `deliver` with every update not seen before, in order.
    /// `onPoll` runs after every successful poll (a liveness signal).
    public func run(onPoll: @Sendable () -> Void = {}, deliver: (Telegram.Update) async -> Void) async throws {
        var failures = 0
        while !Task.isCancelled {
            do {
                let offset = try store.telegramOffset()
                let polled = try await client.getUpdates(offset: offset, timeout: pollTimeout)
                failures = 0
                onPoll()
                guard let last = polled.compactMap(\.updateID).max() else { continue }
                for case .undecodable(let id, let field, let problem) in polled {
                    // Confirmed with the rest (the offset passes it): one odd update never blocks polling.
                    logger.warning(
                        "update_undecodable",
                        metadata: [
                            "update_id": .stringConvertible(id ?? -1), "field": .string(field), "error_type": .string("telegram_undecodable_\(problem)"),
                        ])
                }
                for update in try store.saveReceived(polled.compactMap(\.update), nextOffset: last + 1) {
                    await deliver(update)
                }
            } catch is CancellationError {
                return
            } catch TelegramError.unauthorized {
                throw TelegramError.unauthorized
            } catch let error as TelegramError {
                failures += 1
                if case .conflict = error {
                    logger.error(
                        "poll_conflict",
                        metadata: [
                            "error_type": "telegram_conflict",
                            "hint": "another instance is polling this bot, or a webhook is set; only one may run per token",
                        ])
                } else {
                    logger.warning("poll_failed", metadata: ["error_type": .string(error.errorType), "failures": .stringConvertible(failures)])
                }
                guard (try? await backOff(failures, conflict: { if case .conflict = error { true } else { false } }())) != nil else { return }
            } catch {
                failures += 1
                logger.error("poll_failed", metadata: ["error_type": "storage", "error": "\(error)"])
                guard (try? await backOff(failures, conflict: false)) != nil else { return }  // cancelled: shutting down
            }
        }
    }

    /// Exponential backoff with full jitter, 1 s doubling to 60 s; at least 3 s after a 409,
    /// matching how Telegram spaces its own conflict answers.
    private func backOff(_ failures: Int, conflict: Bool) async throws {
        let ceiling = Double(min(60, 1 << min(failures, 6)))
        let wait = max(conflict ? 3 : 0.2, ceiling * random())
        try await clock.sleep(for: .milliseconds(Int64(wait * 1000)))
    }
}
