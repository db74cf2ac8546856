import Conversation
import Foundation
import Logging
import TelegramBotAPI

/// Makes the user's turn out of a message (and the other parts of its album): the text or caption,
/// photos and image documents for the model to see, a voice note's transcript, a text file, and
/// what the message replies to. Files are downloaded while the message is handled, before its turn
/// is saved, so a restart in the middle reads them again and the message is answered once.
struct TurnReader: Sendable {
    let files: BotAPIClient
    let engine: ConversationEngine
    let config: TelegramConfig
    let bot: Telegram.User

    /// What a message comes to.
    enum Reading: Sendable {
        /// A turn for the model; `transcript` is shown to the user first.
        case turn(UserTurn, TurnFacts, transcript: String?)
        /// A notice instead of an answer.
        case notice(String)
        /// Nothing to answer (an empty message).
        case nothing
        /// Shutdown cut the reading off: the update stays open for the next start.
        case deferred
    }

    static let unsupported = "I can read text, photos, voice messages and text files (plain text, Markdown, code, JSON, CSV, logs), but not this kind of message."
    static let notATextFile = "I can read photos, voice messages and text files (plain text, Markdown, code, JSON, CSV, logs), but not this kind of file."
    static let visionOff = "I can't look at images on this bot; please describe it in words."
    static let notAnImage = "I can read JPEG, PNG, GIF and WebP images, but not this one."
    static let tooBigForTelegram = "This file is too big: bots can download files of up to 20 MB."
    static let downloadFailed = "I couldn't download that file from Telegram. Please send it again."

    /// A message of words only (a reply to words included): read at once, without the download
    /// machinery. Nil when something must be fetched. A long-lived reply task keeps the largest
    /// async frame it ever had, so the common case stays out of `read`'s.
    func readText(_ message: Telegram.Message, chat: ChatHandle) -> Reading? {
        guard !message.hasNonTextContent, message.media_group_id == nil, let text = message.text else { return nil }
        if let replied = message.reply_to_message,
            replied.photo != nil || replied.voice != nil || replied.audio != nil || replied.video_note != nil
                || replied.document?.mime_type?.lowercased().hasPrefix("image/") == true
        {
            return nil
        }
        let words = chat.isGroup ? message.text(withoutMentionsOf: bot.username ?? "") : text
        guard !words.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return .nothing }
        let turn = message.withReplyContext(words, botID: bot.id)
        return .turn(UserTurn(turn), TurnFacts(kinds: ["text"] + (turn != words ? ["reply_context"] : [])), transcript: nil)
    }

    func read(_ message: Telegram.Message, album: [Telegram.Message], chat: ChatHandle, logger: Logger) async -> Reading {
        // Telegram's albums hold at most 10 items; more parts than that are answered, not read.
        let parts = Array(([message] + album).prefix(Self.maxAlbumParts))
        // In groups the model sees the words without the bot's @mention (Telegram's own entities).
        let words = parts.lazy.compactMap { part -> String? in
            guard part.text != nil || part.caption != nil else { return nil }
            let text = chat.isGroup ? part.text(withoutMentionsOf: bot.username ?? "") : (part.text ?? part.caption ?? "")
            return text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : text
        }.first ?? ""
        var facts = TurnFacts()
        var turn = UserTurn(words)
        var transcript: String?
        if !words.isEmpty { facts.kinds.append("text") }

        do {
            for part in parts {
                if let sizes = part.photo, !sizes.isEmpty {
                    turn.attachments.append(try await image(bestPhoto(sizes), size: nil))
                } else if let document = part.document {
                    if document.mime_type?.lowercased().hasPrefix("image/") == true, document.mime_type?.lowercased() != "image/svg+xml" {
                        turn.attachments.append(try await image(FileRef(document), size: document.file_size))
                    } else if TextFile.isText(document) {
                        guard case .turn(let text) = try await textFile(document, caption: words) else { return .notice(Self.notUTF8) }
                        turn.text = text
                        facts.kinds.append("text_file")
                    } else {
                        return .notice(Self.notATextFile)
                    }
                } else if let recording = Recording(part) {
                    let transcription = try await transcribe(recording, logger: logger)
                    transcript = transcription.text
                    turn.text = words.isEmpty ? transcription.text : "\(words)\n\n\(transcription.text)"
                    turn.attachments.append(
                        Attachment(
                            kind: .audio, mimeType: recording.mimeType, seconds: transcription.seconds, transcript: transcription.text,
                            sourceID: recording.file.uniqueID))
                    turn.inputCostUSD += transcription.costUSD
                    facts.audioSeconds += transcription.seconds
                    facts.transcriptionMs += transcription.duration.milliseconds
                    facts.kinds.append("voice")
                } else if part.hasNonTextContent, part.text == nil {
                    return .notice(Self.unsupported)
                }
            }
        } catch let refusal as Refusal {
            return .notice(refusal.notice)
        } catch {
            // Cancelled by shutdown: the update stays open and is read again after the restart.
            return Task.isCancelled ? .deferred : .notice(Self.downloadFailed)
        }
        facts.images = turn.images
        if turn.images > 0 { facts.kinds.append("image") }
        if turn.text.isEmpty, turn.attachments.isEmpty { return .nothing }

        // What the message replies to goes in front, as context.
        let replied = await replyContext(message, chat: chat, logger: logger)
        if let context = replied.text { turn.text = context + turn.text }
        if replied.text != nil || !replied.images.isEmpty { facts.kinds.append("reply_context") }
        turn.attachments += replied.images
        facts.images += replied.images.count
        return .turn(turn, facts, transcript: transcript)
    }

    static let maxAlbumParts = 10

    static let notUTF8 = "That file isn't UTF-8 text, so I can't read it."

    // MARK: Files

    /// A file to fetch: its ids and the size Telegram stated.
    struct FileRef: Sendable {
        var id: String
        var uniqueID: String
        var size: Int?

        init(id: String, uniqueID: String, size: Int?) {
            self.id = id
            self.uniqueID = uniqueID
            self.size = size
        }

        init(_ document: Telegram.Document) {
            self.init(id: document.file_id, uniqueID: document.file_unique_id, size: document.file_size)
        }

        init(_ photo: Telegram.PhotoSize) {
            self.init(id: photo.file_id, uniqueID: photo.file_unique_id, size: photo.file_size)
        }
    }

    /// A reason to answer with a notice instead.
    struct Refusal: Error {
        var notice: String
    }

    /// The largest size that fits `IMAGE_MAX_SIDE` and `IMAGE_MAX_KB`; when none does, the smallest.
    func bestPhoto(_ sizes: [Telegram.PhotoSize]) -> FileRef {
        let settings = engine.settings
        let fitting = sizes.filter { max($0.width, $0.height) <= settings.maxImageSide && ($0.file_size ?? 0) <= settings.maxImageBytes }
        // In floating point: sizes come from the network, and a product of two huge ones must not trap.
        let area = { (size: Telegram.PhotoSize) in Double(size.width) * Double(size.height) }
        return FileRef(fitting.max { area($0) < area($1) } ?? sizes.min { area($0) < area($1) }!)
    }

    /// Downloads an image and checks that it is one the models read.
    private func image(_ file: FileRef, size: Int?) async throws -> Attachment {
        guard engine.settings.vision else { throw Refusal(notice: Self.visionOff) }
        let limit = engine.settings.maxImageBytes
        let tooBig = Refusal(notice: "This image is too big: I take images of up to \(TextFile.kilobytes(limit)) KB.")
        if let size = file.size, size > limit { throw tooBig }
        let bytes = try await download(file, limit: limit, tooBig: tooBig)
        guard let image = ImageFile(bytes) else { throw Refusal(notice: Self.notAnImage) }
        return image.attachment(bytes, sourceID: file.uniqueID)
    }

    /// A text file as the turn's text.
    private func textFile(_ document: Telegram.Document, caption: String) async throws -> TurnText {
        // One byte past the limit tells a long file from one that fits; the rest is never read.
        let bytes = try await download(FileRef(document), limit: BotAPIClient.downloadLimit, prefix: config.maxTextFileBytes + 1)
        guard let file = TextFile(name: document.file_name ?? "file", bytes: bytes, limit: config.maxTextFileBytes, statedSize: document.file_size)
        else { return .notUTF8 }
        return .turn(file.turn(caption: caption.isEmpty ? nil : caption))
    }

    enum TurnText { case turn(String), notUTF8 }

    /// Fetches a file through getFile; Telegram's refusals become notices.
    private func download(_ ref: FileRef, limit: Int, prefix: Int? = nil, tooBig: Refusal? = nil) async throws -> [UInt8] {
        do {
            let file = try await files.getFile(ref.id)
            return try await files.download(file, limit: limit, prefix: prefix)
        } catch TelegramError.fileTooBig(let max) {
            throw max < BotAPIClient.downloadLimit ? (tooBig ?? Refusal(notice: Self.tooBigForTelegram)) : Refusal(notice: Self.tooBigForTelegram)
        } catch is TelegramError {
            throw Refusal(notice: Self.downloadFailed)
        }
    }

    // MARK: Voice

    /// A voice note, audio file or round video: what to transcribe.
    struct Recording: Sendable {
        var file: FileRef
        var seconds: Int
        var fileName: String
        var mimeType: String

        init?(_ message: Telegram.Message) {
            if let voice = message.voice {
                file = FileRef(id: voice.file_id, uniqueID: voice.file_unique_id, size: voice.file_size)
                (seconds, fileName, mimeType) = (max(0, voice.duration ?? 0), "voice.ogg", voice.mime_type ?? "audio/ogg")
            } else if let audio = message.audio {
                file = FileRef(id: audio.file_id, uniqueID: audio.file_unique_id, size: audio.file_size)
                (seconds, fileName, mimeType) = (max(0, audio.duration ?? 0), audio.file_name ?? "audio.mp3", audio.mime_type ?? "audio/mpeg")
            } else if let note = message.video_note {
                file = FileRef(id: note.file_id, uniqueID: note.file_unique_id, size: note.file_size)
                (seconds, fileName, mimeType) = (max(0, note.duration ?? 0), "video_note.mp4", "video/mp4")
            } else {
                return nil
            }
        }

        init?(_ replied: Telegram.RepliedMessage) {
            var message = Telegram.Message(message_id: replied.message_id, from: replied.from, chat: .init(id: 0, type: "private"), date: 0, text: nil)
            (message.voice, message.audio, message.video_note) = (replied.voice, replied.audio, replied.video_note)
            self.init(message)
        }
    }

    /// Checks the limits before anything is downloaded, then transcribes.
    private func transcribe(_ recording: Recording, logger: Logger) async throws -> Transcription {
        guard let limit = engine.transcriptionLimit else { throw Refusal(notice: TranscriptionError.notConfigured.userMessage) }
        if recording.seconds > limit {
            throw Refusal(notice: TranscriptionError.tooLong(seconds: recording.seconds, limit: limit).userMessage)
        }
        let audio = try await download(recording.file, limit: BotAPIClient.downloadLimit)
        do {
            return try await engine.transcribe(
                audio, fileName: recording.fileName, mimeType: recording.mimeType, seconds: recording.seconds, logger: logger)
        } catch let error as TranscriptionError {
            throw Refusal(notice: error.userMessage)
        }
    }

    // MARK: Replies

    /// The context of a reply: the quoted words (or the replied-to message's), a replied-to voice
    /// note's transcript, and a replied-to photo. What the conversation already holds is reused;
    /// otherwise a photo is downloaded and a voice note transcribed, and a failure there costs only
    /// the context.
    private func replyContext(_ message: Telegram.Message, chat: ChatHandle, logger: Logger) async -> (text: String?, images: [Attachment]) {
        guard let replied = message.reply_to_message else { return (nil, []) }
        var words = message.quote?.text ?? replied.text ?? replied.caption
        var images: [Attachment] = []
        let photo = replied.photo.flatMap { $0.isEmpty ? nil : bestPhoto($0) }
            ?? replied.document.flatMap { $0.mime_type?.lowercased().hasPrefix("image/") == true ? FileRef($0) : nil }
        let recording = Recording(replied)
        if photo != nil || recording != nil {
            let conversationID = try? await engine.conversation(kind: UpdateIntake.conversationKind, externalID: chat.id).id
            func stored(_ uniqueID: String) async -> Attachment? {
                guard let conversationID else { return nil }
                return try? await engine.storedAttachment(sourceID: uniqueID, conversationID: conversationID)?.attachment
            }
            if let photo {
                if let kept = await stored(photo.uniqueID), kept.kind == .image {
                    images.append(kept)
                } else if let fetched = try? await image(photo, size: photo.size) {
                    images.append(fetched)
                }
            }
            if let recording, message.quote == nil {
                if let kept = await stored(recording.file.uniqueID), let transcript = kept.transcript {
                    words = transcript
                } else if let transcription = try? await transcribe(recording, logger: logger) {
                    words = transcription.text
                }
            }
        }
        let context = message.replyContext(words, botID: bot.id, what: recording != nil ? "voice message" : photo != nil ? "photo" : "message")
        return (context, images)
    }
}

/// What a turn is made of, for the `reply` and `model_call` log lines.
struct TurnFacts: Sendable, Equatable {
    /// `text`, `image`, `voice`, `text_file`, `reply_context`.
    var kinds: [String] = []
    var images = 0
    var audioSeconds = 0
    var transcriptionMs = 0
}

extension Logger {
    /// This logger with what the user's turn is made of (`input_kinds`, `image_count`,
    /// `audio_seconds`, `transcription_ms`), for the `reply` and `model_call` lines of that turn.
    func with(_ facts: TurnFacts) -> Logger {
        var logger = self
        logger[metadataKey: "input_kinds"] = .array(facts.kinds.map { .string($0) })
        logger[metadataKey: "image_count"] = .stringConvertible(facts.images)
        logger[metadataKey: "audio_seconds"] = .stringConvertible(facts.audioSeconds)
        if facts.audioSeconds > 0 || facts.transcriptionMs > 0 {
            logger[metadataKey: "transcription_ms"] = .stringConvertible(facts.transcriptionMs)
        }
        return logger
    }
}
