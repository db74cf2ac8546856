import Logging

/// Long-polls Telegram and hands over each new update exactly once.
///
/// Updates are saved (with the next offset) before the next getUpdates confirms them to Telegram,
/// so a crash between the two only makes Telegram send them again, and the saved copy says they
/// were already seen. Network errors and 5xx back off with jitter, at most a few seconds, so the bot
/// answers soon after Telegram comes back; a 409 (another instance, or a webhook) is logged clearly
/// and backed off; a rejected token ends the poller.
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
    /// `onTurn` runs at the start of every round, answered or not (the loop is alive); `onPoll`
    /// after every successful poll.
    public func run(
        onTurn: @Sendable () -> Void = {}, onPoll: @Sendable () -> Void = {}, deliver: (Telegram.Update) async -> Void
    ) async throws {
        var failures = 0
        while !Task.isCancelled {
            onTurn()
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
                logger.critical(
                    "token_rejected",
                    metadata: [
                        "error_type": "telegram_unauthorized",
                        "hint": "Telegram no longer accepts TELEGRAM_BOT_TOKEN (revoked in @BotFather?): put the new token in the env file and restart",
                    ])
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

    private func backOff(_ failures: Int, conflict: Bool) async throws {
        try await clock.sleep(for: Self.backoff(failures: failures, conflict: conflict, random: random()))
    }

    /// The longest wait between two polls while Telegram fails.
    static let maxBackoff: Duration = .seconds(5)

    /// Exponential backoff with jitter, 0.5 s doubling to `maxBackoff`, each wait between half and all
    /// of its ceiling; at least 3 s after a 409, matching how Telegram spaces its conflict answers.
    static func backoff(failures: Int, conflict: Bool, random: Double) -> Duration {
        let ceiling = min(maxBackoff.seconds, 0.5 * Double(1 << (max(1, min(failures, 16)) - 1)))
        let wait = max(conflict ? 3 : 0.2, ceiling * (0.5 + 0.5 * min(max(random, 0), 1)))
        return .milliseconds(Int64(wait * 1000))
    }
}
