import CurlHTTP
import Foundation
import Support

/// `POST {base}/audio/transcriptions` of an OpenAI-compatible server (OpenAI, Groq,
/// faster-whisper-server / speaches): multipart `file` and `model`, answer `{"text": …}`.
///
/// Failures are `LLMError`s classified as for chat calls and retried by the same rules (rate limit
/// with `Retry-After`, 5xx, connection, timeout); a refusal, a bad key or a quota is not retried.
public struct TranscriptionClient: Sendable {
    public let baseURL: URL
    let apiKey: Secret
    public let model: String
    let http: HTTPClient
    let policy: RetryPolicy
    /// Backoff waits (injected so tests do not sleep).
    let clock: any Clock<Duration>
    /// One attempt's limit, upload and answer together.
    let timeout: Duration

    public init(
        baseURL: URL, apiKey: Secret, model: String, http: HTTPClient, policy: RetryPolicy = RetryPolicy(), clock: any Clock<Duration>,
        timeout: Duration = .seconds(120)
    ) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.model = model
        self.http = http
        self.policy = policy
        self.clock = clock
        self.timeout = timeout
    }

    /// What came back, and how many attempts it took.
    public struct Transcript: Sendable, Equatable {
        public var text: String
        public var attempts: Int
    }

    /// A failed transcription: the last error and the attempts made.
    public struct Failure: Error, Sendable, Equatable {
        public var error: LLMError
        public var attempts: Int
    }

    /// Transcribes `audio` (sent as it is: OGG/Opus, MP3, MP4, …). Throws `Failure`, or
    /// `CancellationError` when the calling task is cancelled.
    public func transcribe(_ audio: [UInt8], fileName: String, mimeType: String) async throws -> Transcript {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return Transcript(text: try await once(audio, fileName: fileName, mimeType: mimeType), attempts: attempt)
            } catch let error as LLMError {
                try Task.checkCancellation()
                guard let wait = policy.delay(after: error, attempt: attempt) else { throw Failure(error: error, attempts: attempt) }
                try await clock.sleep(for: wait)
            }
        }
    }

    private func once(_ audio: [UInt8], fileName: String, mimeType: String) async throws -> String {
        let boundary = "telegram-assistant-\(UInt64.random(in: 0...UInt64.max))"
        var request = HTTPRequest(method: "POST", url: baseURL.appending(path: "audio/transcriptions"))
        request.headers = [("Authorization", "Bearer \(apiKey.value)"), ("Content-Type", "multipart/form-data; boundary=\(boundary)")]
        request.body = Self.multipart(
            boundary: boundary, fields: [("model", model), ("response_format", "json")],
            file: (name: "file", fileName: fileName, mimeType: mimeType, bytes: audio))
        let response: HTTPResponse
        do {
            response = try await http.fetch(request, deadline: timeout, limit: 4 << 20)
        } catch let error as HTTPClientError {
            // No answer in time is retried like a chat call's first-byte timeout.
            throw LLMError(transport: error, beforeFirstByte: true)
        }
        let body = Data(response.body)
        guard response.status == 200 else {
            throw LLMError(status: response.status, headers: response.headers, body: body, apiKey: apiKey.value)
        }
        struct Answer: Decodable { var text: String }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: body) else { throw LLMError.malformedEvent }
        return answer.text
    }

    /// A `multipart/form-data` body: the text fields, then the file.
    static func multipart(
        boundary: String, fields: [(String, String)], file: (name: String, fileName: String, mimeType: String, bytes: [UInt8])
    ) -> [UInt8] {
        var body: [UInt8] = []
        for (name, value) in fields {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        let safeName = file.fileName.filter { $0 != "\"" && $0 != "\r" && $0 != "\n" }
        body += Array(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(file.name)\"; filename=\"\(safeName)\"\r\nContent-Type: \(file.mimeType)\r\n\r\n"
                .utf8)
        body += file.bytes
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        return body
    }
}
