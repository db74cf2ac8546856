import Foundation
import TestSupport

// Fake Telegram and model servers on 127.0.0.1, with Telegram's real flood limits, for trying the
// real binary by hand (deploy/smoke-test-systemd.sh uses it). Nothing here reaches the internet.
//
// Prints the settings the bot needs as KEY=value lines (plus CONTROL_URL), then serves:
//   POST {CONTROL_URL}/say?chat=ID     the body is a user's message in private chat ID
//   POST {CONTROL_URL}/photo?chat=ID   a photo (a JPEG in two sizes), the body its caption
//   POST {CONTROL_URL}/voice?chat=ID&seconds=N   a voice note; the fake transcribes it as the body
//   POST {CONTROL_URL}/slow?pieces=N   the next answer streams N pieces, 100 ms apart
//   GET  {CONTROL_URL}/sent?chat=ID    what chat ID shows now: a JSON array of message texts

let telegram = try FakeTelegramServer()
let llm = try FakeOpenAIServer(.init(apiKey: "sk-fake-key-0123456789", models: ["fake-model"]))

func query(_ path: String) -> [String: String] {
    guard let components = URLComponents(string: "http://x\(path)") else { return [:] }
    return Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }) { $1 }
}

let control = try FakeHTTPServer { request in
    let route = request.path.split(separator: "?").first.map(String.init) ?? ""
    let parameters = query(request.path)
    switch (request.method, route) {
    case ("POST", "/say"):
        guard let chat = parameters["chat"].flatMap(Int64.init) else { return .json(400, "{\"error\":\"chat=ID needed\"}") }
        let id = telegram.deliverText(String(decoding: request.body, as: UTF8.self), chatID: chat)
        return .json(200, "{\"update_id\":\(id)}")
    case ("POST", "/photo"):
        guard let chat = parameters["chat"].flatMap(Int64.init) else { return .json(400, "{\"error\":\"chat=ID needed\"}") }
        let caption = String(decoding: request.body, as: UTF8.self)
        let id = telegram.deliverPhoto(chatID: chat, caption: caption.isEmpty ? nil : caption, fileID: "photo-\(UInt32.random(in: 0...UInt32.max))")
        return .json(200, "{\"update_id\":\(id)}")
    case ("POST", "/voice"):
        guard let chat = parameters["chat"].flatMap(Int64.init) else { return .json(400, "{\"error\":\"chat=ID needed\"}") }
        let words = String(decoding: request.body, as: UTF8.self)
        if !words.isEmpty { llm.enqueueTranscription(.text(words)) }
        let id = telegram.deliverVoice(
            chatID: chat, seconds: parameters["seconds"].flatMap(Int.init) ?? 3, fileID: "voice-\(UInt32.random(in: 0...UInt32.max))")
        return .json(200, "{\"update_id\":\(id)}")
    case ("POST", "/slow"):
        let pieces = parameters["pieces"].flatMap(Int.init) ?? 300
        llm.enqueue(.answer((1...pieces).map { "word\($0)" }.joined(separator: " "), chunkSize: 8, pause: .milliseconds(100)))
        return .json(200, "{}")
    case ("GET", "/sent"):
        guard let chat = parameters["chat"].flatMap(Int64.init) else { return .json(400, "{\"error\":\"chat=ID needed\"}") }
        let texts = telegram.visibleMessages(chatID: chat).map(\.text)
        let body = (try? JSONEncoder().encode(texts)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        return .json(200, body)
    default:
        return .json(404, "{\"error\":\"POST /say, /photo, /voice, /slow or GET /sent\"}")
    }
}

let settings = [
    "TELEGRAM_BOT_TOKEN=\(telegram.token)",
    "TELEGRAM_API_URL=\(telegram.baseURL.absoluteString)",
    "OPENAI_API_KEY=\(llm.settings.apiKey)",
    "OPENAI_BASE_URL=\(llm.baseURL.absoluteString)",
    "OPENAI_MODEL=fake-model",
    "TRANSCRIPTION_MODEL=fake-whisper",
    "CONTROL_URL=http://127.0.0.1:\(control.port)",
]
FileHandle.standardOutput.write(Data((settings.joined(separator: "\n") + "\n").utf8))
withExtendedLifetime((telegram, llm, control)) {
    while true { sleep(3600) }
}
