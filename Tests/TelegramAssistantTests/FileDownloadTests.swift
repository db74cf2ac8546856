import CurlHTTP
import Foundation
import Testing
import TestSupport

@testable import Support
@testable import TelegramBotAPI

/// Files users send: `getFile`, then the download from `/file/bot<token>/<path>`, within the Bot
/// API's 20 MB, and never with the token in an error.
@Suite(.timeLimit(.minutes(2))) struct FileDownloadTests {
    func client(_ server: FakeTelegramServer) -> BotAPIClient {
        BotAPIClient(baseURL: server.baseURL, token: Secret(server.token), http: HTTPClient())
    }

    @Test func aFileIsDescribedThenDownloaded() async throws {
        let server = try FakeTelegramServer()
        let bytes = (0..<70_000).map { UInt8($0 % 251) }
        server.addFile(id: "F1", path: "photos/file_1.jpg", bytes: bytes)
        let client = client(server)
        let file = try await client.getFile("F1")
        #expect(file.file_size == 70_000)
        #expect(file.file_path == "photos/file_1.jpg")
        #expect(try await client.download(file) == bytes)
        #expect(server.calls("file").map(\.status) == [200])
    }

    /// A local Bot API server in `--local` mode gives an absolute path on its disk: the file is
    /// read from there, with the same limits, and nothing is fetched over HTTP.
    @Test func aLocalServersAbsolutePathIsReadFromDisk() async throws {
        let server = try FakeTelegramServer()
        let directory = TemporaryDirectory()
        let path = directory.path + "/voice/file_3.oga"
        try FileManager.default.createDirectory(atPath: directory.path + "/voice", withIntermediateDirectories: true)
        let bytes = (0..<3_000).map { UInt8($0 % 7) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        server.addFile(id: "F9", path: path, bytes: bytes)
        let client = client(server)
        let file = try await client.getFile("F9")
        #expect(try await client.download(file) == bytes)
        #expect(try await client.download(file, prefix: 100) == Array(bytes.prefix(100)))
        let tooBig = await BotAPIClientTests.error { _ = try await client.download(Telegram.File(file_id: "F9", file_unique_id: "u", file_path: path), limit: 1_000) }
        #expect(tooBig == .fileTooBig(limit: 1_000))
        let missing = await BotAPIClientTests.error { _ = try await client.download(Telegram.File(file_id: "x", file_unique_id: "x", file_path: "/nonexistent/x")) }
        #expect(missing?.errorType == "telegram_network")
        #expect(server.calls("file").isEmpty)
    }

    /// A size Telegram states that is over the limit is refused before anything is downloaded.
    @Test func aFileStatedOverTheLimitIsNeverDownloaded() async throws {
        let server = try FakeTelegramServer()
        server.addFile(id: "F2", path: "documents/big.log", bytes: Array(repeating: 1, count: 2_000), reportedSize: 2_000)
        let client = client(server)
        let file = try await client.getFile("F2")
        let error = await BotAPIClientTests.error { _ = try await client.download(file, limit: 1_000) }
        #expect(error == .fileTooBig(limit: 1_000))
        #expect(server.calls("file").isEmpty)
    }

    /// Without a stated size, the body is cut off at the limit: memory never holds more.
    @Test func aBodyThatGrowsPastTheLimitIsCutOff() async throws {
        let server = try FakeTelegramServer()
        server.addFile(id: "F3", path: "voice/file_3.oga", bytes: Array(repeating: 2, count: 300_000))
        let client = client(server)
        let unstated = Telegram.File(file_id: "F3", file_unique_id: "u", file_size: nil, file_path: "voice/file_3.oga")
        let error = await BotAPIClientTests.error { _ = try await client.download(unstated, limit: 100_000) }
        #expect(error == .fileTooBig(limit: 100_000))
    }

    /// The cloud Bot API refuses `getFile` for files over 20 MB.
    @Test func telegramsOwnTooBigIsTheSameError() async throws {
        let server = try FakeTelegramServer()
        server.addFile(id: "F4", path: "videos/huge.mp4", bytes: Array(repeating: 0, count: 20 * 1024 * 1024 + 1))
        let error = await BotAPIClientTests.error { _ = try await client(server).getFile("F4") }
        #expect(error == .fileTooBig(limit: BotAPIClient.downloadLimit))
        #expect(error?.errorType == "telegram_file_too_big")
    }

    /// A path that is gone (file paths expire after an hour) is a 404; no error text holds the token.
    @Test func aMissingFileIsNotFoundAndNoErrorNamesTheToken() async throws {
        let server = try FakeTelegramServer()
        let client = client(server)
        let gone = Telegram.File(file_id: "F5", file_unique_id: "u", file_size: 10, file_path: "photos/expired.jpg")
        let error = try #require(await BotAPIClientTests.error { _ = try await client.download(gone) })
        guard case .notFound = error else {
            Issue.record("not a 404: \(error)")
            return
        }
        let unreachable = BotAPIClient(baseURL: URL(string: "http://127.0.0.1:9")!, token: Secret(server.token), http: HTTPClient())
        let refused = try #require(await BotAPIClientTests.error { _ = try await unreachable.download(gone) })
        for text in ["\(error)", "\(refused)", String(reflecting: refused)] {
            #expect(!text.contains(server.token) && !text.contains("expired.jpg"), "\(text)")
        }
    }
}

extension FileDownloadTests {
    /// Only the beginning of a long text file is wanted: the download stops there.
    @Test func aPrefixDownloadReadsOnlyThePrefix() async throws {
        let server = try FakeTelegramServer()
        let bytes = (0..<300_000).map { UInt8($0 % 200) }
        server.addFile(id: "F6", path: "documents/long.txt", bytes: bytes)
        let client = client(server)
        let file = try await client.getFile("F6")
        let prefix = try await client.download(file, prefix: 1_001)
        #expect(prefix == Array(bytes[..<1_001]))
        let short = try await client.download(Telegram.File(file_id: "F6", file_unique_id: "u", file_path: "documents/long.txt"), prefix: 500_000)
        #expect(short == bytes, "a file shorter than the prefix comes whole")
    }
}
