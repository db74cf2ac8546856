import Logging
import Foundation
import OpenAIClient
import Support

/// Turns voice notes and audio into text for the conversation, through the configured
/// transcription endpoint, within a length limit, and writes one `transcription_call` log line.
public struct Transcriber: Sendable {
    let client: TranscriptionClient
    /// The longest audio accepted, in seconds (`TRANSCRIPTION_MAX_SECONDS`).
    public let maxSeconds: Int
    /// `TRANSCRIPTION_PRICE_PER_MINUTE`.
    let pricePerMinute: Double
    /// Measures how long a transcription took.
    let clock: any Clock<Duration>

    public init(client: TranscriptionClient, maxSeconds: Int, pricePerMinute: Double, clock: any Clock<Duration>) {
        self.client = client
        self.maxSeconds = maxSeconds
        self.pricePerMinute = pricePerMinute
        self.clock = clock
    }

    /// Transcribes `audio` of `seconds` (as the sender stated it). Throws `TranscriptionError`, or
    /// `CancellationError` when the calling task is cancelled.
    func transcribe(_ audio: [UInt8], fileName: String, mimeType: String, seconds: Int, logger: Logger) async throws -> Transcription {
        let stopwatch = Stopwatch(clock)
        var metadata: Logger.Metadata = [
            "event": "transcription_call", "model": .string(client.model), "audio_seconds": .stringConvertible(seconds),
        ]
        do {
            let transcript = try await client.transcribe(audio, fileName: fileName, mimeType: mimeType)
            let elapsed = stopwatch.elapsed
            metadata["transcription_ms"] = .stringConvertible(elapsed.milliseconds)
            metadata["attempts"] = .stringConvertible(transcript.attempts)
            let text = transcript.text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else {
                metadata["error_type"] = "transcription_empty"
                logger.warning("transcription_call", metadata: metadata)
                throw TranscriptionError.noSpeech
            }
            logger.info("transcription_call", metadata: metadata)
            return Transcription(text: text, seconds: seconds, costUSD: Double(seconds) / 60 * pricePerMinute, duration: elapsed)
        } catch let failure as TranscriptionClient.Failure {
            metadata["transcription_ms"] = .stringConvertible(stopwatch.elapsed.milliseconds)
            metadata["attempts"] = .stringConvertible(failure.attempts)
            metadata["error_type"] = .string("transcription_\(failure.error.errorType)")
            switch failure.error {
            case .quotaExceeded, .unauthorized, .modelNotFound: logger.error("transcription_call", metadata: metadata)
            default: logger.warning("transcription_call", metadata: metadata)
            }
            throw TranscriptionError.failed(failure.error)
        }
    }
}

/// A voice note as text.
public struct Transcription: Sendable, Equatable {
    public var text: String
    public var seconds: Int
    public var costUSD: Double
    /// How long the transcription took.
    public var duration: Duration
}

/// Why a voice note did not become text.
public enum TranscriptionError: Error, Sendable, Equatable {
    /// `TRANSCRIPTION_MODEL` is not set.
    case notConfigured
    /// Longer than `TRANSCRIPTION_MAX_SECONDS`.
    case tooLong(seconds: Int, limit: Int)
    /// The endpoint failed (after the retries the error allows).
    case failed(LLMError)
    /// It answered, with no words.
    case noSpeech

    /// For the log's `error_type`.
    public var errorType: String {
        switch self {
        case .notConfigured: "transcription_not_configured"
        case .tooLong: "transcription_too_long"
        case .failed(let error): "transcription_\(error.errorType)"
        case .noSpeech: "transcription_empty"
        }
    }

    /// One short sentence for the person who sent it.
    public var userMessage: String {
        switch self {
        case .notConfigured:
            "Voice messages are not set up on this bot."
        case .tooLong(_, let limit):
            "This recording is too long for me: I can transcribe up to \(Self.minutes(limit))."
        case .noSpeech:
            "I couldn't make out any words in that recording."
        case .failed(let error):
            switch error {
            case .rateLimited: "The transcription service is busy. Please send the voice message again in a moment."
            case .quotaExceeded: "The transcription service's quota is used up. Please tell the bot's operator."
            case .unauthorized: "The transcription service rejected the bot's API key. Please tell the bot's operator."
            case .modelNotFound: "The configured transcription model is not available. Please tell the bot's operator."
            case .timeout: "The transcription took too long. Please try a shorter voice message."
            case .connection: "Could not reach the transcription service. Please try again in a moment."
            case .badRequest: "The transcription service could not read that recording."
            default: "The transcription service had a problem. Please try again in a moment."
            }
        }
    }

    static func minutes(_ seconds: Int) -> String {
        seconds % 60 == 0 ? "\(seconds / 60) minute\(seconds == 60 ? "" : "s")" : "\(seconds) seconds"
    }
}
