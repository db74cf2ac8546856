import Foundation
import Testing
import TestSupport

@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd

/// A text file someone drops into the chat becomes part of their turn: fenced, with its name,
/// after the caption; a long one is cut with a note; anything else gets a clear notice.
@Suite(.timeLimit(.minutes(2))) struct TextFileTests {
    func document(chat: Int64, id: String, name: String, mime: String, size: Int, caption: String? = nil) -> String {
        let captionJSON = caption.map { #","caption":"\#($0)""# } ?? ""
        return #""message":{"message_id":7,"date":1,"chat":{"id":\#(chat),"type":"private"},"from":{"id":\#(chat),"is_bot":false,"first_name":"Ann"}\#(captionJSON),"document":{"file_id":"\#(id)","file_unique_id":"u\#(id)","file_name":"\#(name)","mime_type":"\#(mime)","file_size":\#(size)}}"#
    }

    @Test func aLogFileWithACaptionBecomesOneTurn() async throws {
        let harness = try BotHarness()
        let log = "12:00 start\n12:01 ```odd``` line\n12:02 error: disk full\n"
        harness.telegram.addChat(981, type: "private")
        harness.telegram.addFile(id: "D1", path: "documents/file_1.log", bytes: Array(log.utf8))
        try await harness.withBot { _ in
            harness.telegram.deliver(updateJSON: document(chat: 981, id: "D1", name: "app.log", mime: "text/plain", size: log.utf8.count, caption: "what went wrong?"))
            try await harness.eventually("the answer") { harness.texts(981).count == 1 }
        }
        let turn = try #require(harness.llm.chatRequests.last?.messages.last?.content)
        #expect(turn == "what went wrong?\n\nFile: app.log\n````\n\(log)````")
        #expect(harness.replyRecords.first?["input_kinds"] as? [String] == ["text", "text_file"])
        #expect(harness.telegram.calls("file").count == 1)
    }

    /// Past TEXT_FILE_MAX_KB only the beginning goes in, whole characters, with a note that says so.
    @Test func aLongFileIsCutWithANote() async throws {
        let harness = try BotHarness(overrides: ["TEXT_FILE_MAX_KB": "1"])
        let text = String(repeating: "é", count: 1_500)  // 3,000 bytes
        harness.telegram.addChat(982, type: "private")
        harness.telegram.addFile(id: "D2", path: "documents/file_2.md", bytes: Array(text.utf8))
        try await harness.withBot { _ in
            harness.telegram.deliver(updateJSON: document(chat: 982, id: "D2", name: "notes.md", mime: "application/octet-stream", size: 3_000))
            try await harness.eventually("the answer") { harness.texts(982).count == 1 }
        }
        let turn = try #require(harness.llm.chatRequests.last?.messages.last?.content)
        #expect(turn.hasPrefix("Here is a file.\n\nFile: notes.md\n```\n" + String(repeating: "é", count: 512) + "\n```"))
        #expect(turn.hasSuffix("[The file is 3 KB; only its first 1 KB are shown.]"))
    }

    @Test func binaryFilesAndOtherDocumentsGetANotice() async throws {
        let harness = try BotHarness()
        harness.telegram.addChat(983, type: "private")
        harness.telegram.addFile(id: "D3", path: "documents/file_3.txt", bytes: [0x89, 0x50, 0x4E, 0x47, 0x00, 0xFF, 0xFE])
        try await harness.withBot { _ in
            harness.telegram.deliver(updateJSON: document(chat: 983, id: "D3", name: "image.txt", mime: "text/plain", size: 7))
            try await harness.eventually("the first notice") { harness.texts(983).count == 1 }
            harness.telegram.deliver(updateJSON: document(chat: 983, id: "D4", name: "report.pdf", mime: "application/pdf", size: 1_000))
            try await harness.eventually("the second notice") { harness.texts(983).count == 2 }
        }
        #expect(harness.texts(983) == ["That file isn't UTF-8 text, so I can't read it.", TurnReader.notATextFile])
        #expect(harness.llm.chatRequests.isEmpty)
        #expect(harness.telegram.calls("file").count == 1, "the PDF is never downloaded")
    }

    @Test func aFileTelegramWillNotHandOverGetsANotice() async throws {
        let harness = try BotHarness()
        harness.telegram.addChat(984, type: "private")
        harness.telegram.addFile(id: "D5", path: "documents/huge.csv", bytes: Array(repeating: 65, count: 20 * 1024 * 1024 + 1))
        try await harness.withBot { _ in
            harness.telegram.deliver(updateJSON: document(chat: 984, id: "D5", name: "huge.csv", mime: "text/csv", size: 20 * 1024 * 1024 + 1))
            try await harness.eventually("the notice") { harness.texts(984).count == 1 }
        }
        #expect(harness.texts(984) == ["This file is too big: bots can download files of up to 20 MB."])
        #expect(harness.telegram.calls("file").isEmpty)
    }

    @Test func textLikeIsDecidedByTypeOrName() {
        func doc(_ name: String, _ mime: String?) -> Telegram.Document {
            Telegram.Document(file_id: "x", file_unique_id: "u", file_name: name, mime_type: mime)
        }
        #expect(TextFile.isText(doc("a.bin", "text/x-python")))
        #expect(TextFile.isText(doc("data", "application/json")))
        #expect(TextFile.isText(doc("main.swift", "application/octet-stream")))
        #expect(TextFile.isText(doc("Dockerfile", nil)))
        #expect(!TextFile.isText(doc("report.pdf", "application/pdf")))
        #expect(!TextFile.isText(doc("photo.jpg", "image/jpeg")))
    }
}

extension TextFileTests {
    /// The cut keeps whole characters: a split one goes, a complete one stays.
    @Test func theCutNeverSplitsACharacter() throws {
        let text = "aé€😀"  // 1 + 2 + 3 + 4 bytes
        let bytes = Array(text.utf8)
        for limit in 1..<bytes.count {
            let file = try #require(TextFile(name: "t.txt", bytes: bytes, limit: limit))
            #expect(text.hasPrefix(file.text))
            #expect(file.text.utf8.count > limit - 4 && file.text.utf8.count <= limit, "limit \(limit): \(file.text)")
        }
        #expect(TextFile(name: "t.txt", bytes: bytes, limit: 3)?.text == "aé")
        #expect(TextFile(name: "t.txt", bytes: bytes, limit: 5)?.text == "aé")
        #expect(TextFile(name: "t.txt", bytes: bytes, limit: 6)?.text == "aé€")
    }
}
