import Foundation
import Testing
import TestSupport

@testable import AssistantStore
@testable import Conversation
@testable import OpenAIClient
@testable import TelegramAssistant
@testable import TelegramBotAPI
@testable import TelegramFrontEnd

/// Photos and images reach vision models as content parts beside the caption, are stored once as
/// blobs, and a model that cannot see them costs one clear line, not a broken conversation.
@Suite(.timeLimit(.minutes(2))) struct PhotoTests {
    @Test func aPhotoWithACaptionIsOneTurnWithTheImage() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliverPhoto(chatID: 1101, caption: "what is wrong here?", fileID: "P1", sizes: [(90, 60), (800, 533), (2560, 1706)])
            try await harness.eventually("the answer") { harness.texts(1101).count == 1 }
        }
        let turn = try #require(harness.llm.chatRequests.last?.messages.last)
        #expect(turn.content == "what is wrong here?")
        #expect(turn.images.count == 1)
        // The largest size within IMAGE_MAX_SIDE (2048): the 800 px one, not the 2560 px one.
        #expect(harness.telegram.calls("getFile").compactMap { $0.parameters["file_id"]?.string } == ["P1-1"])
        let sent = try #require(turn.images.first)
        #expect(sent.hasPrefix("data:image/jpeg;base64,"))
        #expect(Data(base64Encoded: String(sent.dropFirst("data:image/jpeg;base64,".count))).map(Array.init) == TestImages.jpeg(width: 800, height: 533, padding: 200))
        let reply = try #require(harness.replyRecords.first)
        #expect(reply["input_kinds"] as? [String] == ["text", "image"])
        #expect("\(reply["image_count"] ?? "")" == "1")
        let modelCall = try #require(harness.log.records.first { $0["msg"] as? String == "model_call" })
        #expect(modelCall["input_kinds"] as? [String] == ["text", "image"])
        #expect("\(modelCall["image_count"] ?? "")" == "1" && "\(modelCall["audio_seconds"] ?? "")" == "0")
        // Stored once, as bytes, and counted.
        let conversation = try #require(try await harness.store.latestConversation(kind: "telegram"))
        #expect(conversation.images == 1)
        let context = try #require(try await harness.store.context(conversationID: conversation.id))
        #expect(context.attachments.values.flatMap { $0 }.map(\.data) == [TestImages.jpeg(width: 800, height: 533, padding: 200)])
    }

    /// Later requests re-send the image while its turn is in the window, from the database.
    @Test func anImageStaysInTheConversationWithoutAnotherDownload() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliverPhoto(chatID: 1102, fileID: "P2", sizes: [(640, 480)])
            try await harness.eventually("the first answer") { harness.texts(1102).count == 1 }
            harness.telegram.deliverText("and the colours?", chatID: 1102)
            try await harness.eventually("the second answer") { harness.texts(1102).count == 2 }
        }
        let second = try #require(harness.llm.chatRequests.last)
        #expect(second.messages.map(\.images.count) == [0, 1, 0, 0])
        #expect(second.messages.map(\.role) == ["system", "user", "assistant", "user"])
        #expect(harness.telegram.calls("file").count == 1)
    }

    @Test func anImageSentAsADocumentIsTreatedTheSame() async throws {
        let harness = try BotHarness()
        let png = TestImages.png(width: 300, height: 200)
        harness.telegram.addChat(1103, type: "private")
        harness.telegram.addFile(id: "D1", path: "documents/shot.png", bytes: png)
        try await harness.withBot { _ in
            harness.telegram.deliver(
                updateJSON: #""message":{"message_id":7,"date":1,"chat":{"id":1103,"type":"private"},"from":{"id":1103,"is_bot":false,"first_name":"Ann"},"caption":"read this","document":{"file_id":"D1","file_unique_id":"uD1","file_name":"shot.png","mime_type":"image/png","file_size":\#(png.count)}}"#)
            try await harness.eventually("the answer") { harness.texts(1103).count == 1 }
        }
        let turn = try #require(harness.llm.chatRequests.last?.messages.last)
        #expect(turn.content == "read this")
        #expect(turn.images.first?.hasPrefix("data:image/png;base64,") == true)
    }

    /// A file that claims to be an image and is not, and one over IMAGE_MAX_KB, get notices; nothing
    /// reaches the model.
    @Test func notAnImageOrTooBigGetsANotice() async throws {
        let harness = try BotHarness(overrides: ["IMAGE_MAX_KB": "16"])
        harness.telegram.addChat(1104, type: "private")
        harness.telegram.addFile(id: "D2", path: "documents/fake.jpg", bytes: Array("not an image at all, just text".utf8))
        harness.telegram.addFile(id: "D3", path: "documents/big.jpg", bytes: TestImages.jpeg(width: 4000, height: 3000, padding: 20_000))
        func document(_ id: String, _ size: Int, message: Int) -> String {
            #""message":{"message_id":\#(message),"date":1,"chat":{"id":1104,"type":"private"},"from":{"id":1104,"is_bot":false,"first_name":"Ann"},"document":{"file_id":"\#(id)","file_unique_id":"u\#(id)","file_name":"x.jpg","mime_type":"image/jpeg","file_size":\#(size)}}"#
        }
        try await harness.withBot { _ in
            harness.telegram.deliver(updateJSON: document("D2", 30, message: 1))
            try await harness.eventually("the first notice") { harness.texts(1104).count == 1 }
            harness.telegram.deliver(updateJSON: document("D3", 20_100, message: 2))
            try await harness.eventually("the second notice") { harness.texts(1104).count == 2 }
        }
        #expect(harness.texts(1104) == [TurnReader.notAnImage, "This image is too big: I take images of up to 16 KB."])
        #expect(harness.telegram.calls("file").count == 1, "the big one is refused by its stated size, before any download")
        #expect(harness.llm.chatRequests.isEmpty)
    }

    @Test func visionOffRefusesImagesClearly() async throws {
        let harness = try BotHarness(overrides: ["VISION": "off"])
        try await harness.withBot { _ in
            harness.telegram.deliverPhoto(chatID: 1105, caption: "look", fileID: "P5")
            try await harness.eventually("the notice") { harness.texts(1105).count == 1 }
        }
        #expect(harness.texts(1105) == [TurnReader.visionOff])
        #expect(harness.telegram.calls("file").isEmpty)
        #expect(harness.llm.chatRequests.isEmpty)
    }

    /// A text-only model (OpenAI's 400 and llama.cpp's 500 alike): one clear line, not retried as
    /// a server fault; the turn stays with a placeholder, so the next message is answered.
    @Test(arguments: [FakeOpenAIServer.ImageRejection.openAI, .llamaCpp])
    func aModelThatCannotSeeImagesSaysSoOnceAndTheChatGoesOn(rejection: FakeOpenAIServer.ImageRejection) async throws {
        var settings = FakeOpenAIServer.Settings()
        settings.rejectsImages = rejection
        let harness = try BotHarness(llm: settings)
        try await harness.withBot { _ in
            harness.telegram.deliverPhoto(chatID: 1106, caption: "what breed is this dog?", fileID: "P6")
            try await harness.eventually("the notice") { harness.texts(1106).count == 1 }
            harness.telegram.deliverText("ok, then tell me about beagles", chatID: 1106)
            try await harness.eventually("the answer") { harness.texts(1106).count == 2 }
        }
        #expect(harness.texts(1106) == [LLMError.imagesUnsupported.userMessage, "Echo: ok, then tell me about beagles"])
        #expect(harness.llm.chatRequests.count == 2, "an image refusal is not retried")
        let second = try #require(harness.llm.chatRequests.last)
        #expect(second.messages.allSatisfy { $0.images.isEmpty })
        #expect(second.messages[1].content == UserTurn.withheldImage + "\nwhat breed is this dog?")
        #expect(harness.replyRecords.first?["error_type"] as? String == "images_unsupported")
    }

    /// A reply to a photo the bot has seen reuses the stored image: no second download.
    @Test func aReplyToASeenPhotoReusesTheStoredImage() async throws {
        let harness = try BotHarness()
        try await harness.withBot { _ in
            harness.telegram.deliverPhoto(chatID: 1107, caption: "my garden", messageID: 1, fileID: "P7", sizes: [(640, 480)])
            try await harness.eventually("the first answer") { harness.texts(1107).count == 1 }
            let replied = #"{"message_id":1,"date":1,"chat":{"id":1107,"type":"private"},"from":{"id":1107,"is_bot":false,"first_name":"U"},"caption":"my garden","photo":[{"file_id":"P7-0","file_unique_id":"u-P7-0","width":640,"height":480}]}"#
            harness.telegram.deliver(
                updateJSON: #""message":{"message_id":3,"date":1,"chat":{"id":1107,"type":"private"},"from":{"id":1107,"is_bot":false,"first_name":"U"},"text":"which plant is that?","reply_to_message":\#(replied)}"#)
            try await harness.eventually("the answer to the reply") { harness.texts(1107).count == 2 }
            // Forgotten history forgets the image too: a reply after /clear fetches it again.
            harness.telegram.deliverText("/clear", chatID: 1107)
            try await harness.eventually("cleared") { harness.texts(1107).count == 3 }
            harness.telegram.deliver(
                updateJSON: #""message":{"message_id":5,"date":1,"chat":{"id":1107,"type":"private"},"from":{"id":1107,"is_bot":false,"first_name":"U"},"text":"and now?","reply_to_message":\#(replied)}"#)
            try await harness.eventually("the answer after clearing") { harness.texts(1107).count == 4 }
        }
        let requests = harness.llm.chatRequests
        #expect(requests.count == 3)
        // The reply's turn holds the image, but the request sends it once, with the turn that brought it.
        #expect(requests[1].messages.map(\.images.count) == [0, 1, 0, 0])
        #expect(requests[1].messages.last?.content == "[In reply to U's photo: \"my garden\"]\n\nwhich plant is that?")
        #expect(requests[2].messages.map(\.images.count) == [0, 1])
        #expect(harness.telegram.calls("file").count == 2, "downloaded for the photo, and again only after /clear")
    }

    /// Shutdown in the middle of a photo's download leaves the update open; the next start
    /// downloads it again and answers once.
    @Test func aRestartDuringADownloadAnswersOnce() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/bot.sqlite"
        let telegram = try FakeTelegramServer(limits: .init(scale: BotHarness.scale))
        let llm = try FakeOpenAIServer()
        telegram.stallDownloads(true)
        do {
            let harness = try BotHarness(llmServer: llm, telegram: telegram, overrides: ["SHUTDOWN_GRACE_SECONDS": "0"], store: try SQLiteStore(path: path))
            let bot = try await harness.connect()
            let group = bot.serviceGroup(logger: harness.log.logger)
            let running = Task { try await group.run() }
            defer { running.cancel() }  // no bot outlives its test, however the test ends
            telegram.deliverPhoto(chatID: 1108, caption: "is this ripe?", fileID: "P8", sizes: [(640, 480)])
            try await harness.eventually("the download under way") { telegram.calls("file").count == 1 }
            await group.triggerGracefulShutdown()
            try await running.value
            #expect(telegram.visibleMessages(chatID: 1108).isEmpty, "no notice: the message was not refused")
            #expect(await harness.store.openUpdatesCount == 1)
        }
        telegram.stallDownloads(false)
        let second = try BotHarness(llmServer: llm, telegram: telegram, store: try SQLiteStore(path: path))
        try await second.withBot { _ in
            try await second.eventually("the answer") { telegram.visibleMessages(chatID: 1108).count == 1 }
            try await second.eventually("handled") { await second.store.openUpdatesCount == 0 }
        }
        #expect(telegram.visibleMessages(chatID: 1108).map(\.text) == ["Echo: is this ripe?"])
        #expect(llm.chatRequests.count == 1)
        #expect(llm.chatRequests.first?.messages.last?.images.count == 1)
    }

    @Test func photoSizesAreChosenByTheBudgetAndNeverAboveIt() throws {
        let harness = try BotHarness(overrides: ["IMAGE_MAX_SIDE": "1000", "IMAGE_MAX_KB": "100"])
        let assistant = try harness.assistant()
        let reader = TurnReader(
            files: BotAPIClient(baseURL: harness.telegram.baseURL, token: .init(harness.telegram.token), http: assistant.http),
            engine: assistant.engine, config: try #require(harness.config.telegram), bot: .init(id: 1, is_bot: true, first_name: "B"))
        func size(_ id: String, _ w: Int, _ h: Int, _ bytes: Int?) -> Telegram.PhotoSize {
            Telegram.PhotoSize(file_id: id, file_unique_id: id, width: w, height: h, file_size: bytes)
        }
        #expect(reader.bestPhoto([size("s", 90, 60, 2_000), size("m", 800, 600, 60_000), size("l", 1280, 960, 90_000)]).id == "m")
        #expect(reader.bestPhoto([size("s", 90, 60, 2_000), size("m", 800, 600, 200_000)]).id == "s", "over the byte budget")
        #expect(reader.bestPhoto([size("l", 1280, 960, nil), size("xl", 2560, 1920, nil)]).id == "l", "none fits: the smallest")
        // Sizes come from the network: absurd ones must not trap.
        #expect(reader.bestPhoto([size("huge", Int.max, Int.max, nil), size("s", 90, 60, nil)]).id == "s")
    }

    @Test func imageHeadersGiveTypeAndSize() {
        let jpeg = ImageFile(TestImages.jpeg(width: 1280, height: 853))
        #expect(jpeg?.mimeType == "image/jpeg" && jpeg?.width == 1280 && jpeg?.height == 853)
        let png = ImageFile(TestImages.png(width: 300, height: 70_000))
        #expect(png?.mimeType == "image/png" && png?.width == 300 && png?.height == 70_000)
        #expect(ImageFile(Array("GIF89a".utf8) + [0x10, 0x00, 0x20, 0x00] + Array(repeating: 0, count: 20))?.width == 16)
        #expect(ImageFile(Array("%PDF-1.7 hello".utf8)) == nil)
        #expect(ImageFile([0xFF, 0xD8, 0xFF]) == nil, "cut short")
        #expect(ImageFile([]) == nil)
    }

    @Test func imageTokensFollowTheDocumentedEstimate() {
        #expect(TokenEstimator.imageTokens(width: 512, height: 512) == 255)
        #expect(TokenEstimator.imageTokens(width: 1024, height: 1024) == 765)
        #expect(TokenEstimator.imageTokens(width: 4096, height: 2048) == 1105)
    }
}
