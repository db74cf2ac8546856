/// Wire types of the Telegram Bot API, with the fields this bot uses. Field names are Telegram's.
public enum Telegram {
    /// Every Bot API answer: `{ok, result}` or `{ok: false, error_code, description, parameters}`.
    struct Envelope<Result: Decodable>: Decodable {
        var ok: Bool
        var result: Result?
        var error_code: Int?
        var description: String?
        var parameters: ResponseParameters?
    }

    struct ResponseParameters: Codable, Sendable, Equatable {
        public var migrate_to_chat_id: Int64?
        public var retry_after: Int?
    }

    /// `getWebhookInfo`: the webhook set for the bot ("" when it polls).
    public struct WebhookInfo: Codable, Sendable, Equatable {
        public var url: String
        public var pending_update_count: Int
        public var last_error_message: String?
    }

    public struct User: Codable, Sendable, Equatable {
        public var id: Int64
        public var is_bot: Bool
        public var first_name: String
        public var username: String?

        public init(id: Int64, is_bot: Bool, first_name: String, username: String? = nil) {
            self.id = id
            self.is_bot = is_bot
            self.first_name = first_name
            self.username = username
        }
    }

    public struct Chat: Codable, Sendable, Equatable {
        public var id: Int64
        /// `private`, `group`, `supergroup` or `channel`.
        public var type: String
        public var title: String?

        public init(id: Int64, type: String, title: String? = nil) {
            self.id = id
            self.type = type
            self.title = title
        }

        public var isPrivate: Bool { type == "private" }
    }

    /// A formatting span. `offset` and `length` are in UTF-16 code units.
    public struct MessageEntity: Codable, Sendable, Equatable {
        public var type: String
        public var offset: Int
        public var length: Int
        public var url: String?
        var language: String?

        public init(type: String, offset: Int, length: Int, url: String? = nil, language: String? = nil) {
            self.type = type
            self.offset = offset
            self.length = length
            self.url = url
            self.language = language
        }
    }

    /// The message a message replies to: whose it is, its words, and the media a reply may reuse.
    public struct RepliedMessage: Codable, Sendable, Equatable {
        public var message_id: Int
        public var from: User?
        public var text: String?
        public var caption: String?
        public var photo: [PhotoSize]?
        public var document: Document?
        public var voice: Voice?
        public var audio: Audio?
        public var video_note: VideoNote?

        public init(message_id: Int, from: User?, text: String? = nil, caption: String? = nil) {
            self.message_id = message_id
            self.from = from
            self.text = text
            self.caption = caption
        }
    }

    /// One size of a photo; Telegram sends several, smallest first.
    public struct PhotoSize: Codable, Sendable, Equatable {
        public var file_id: String
        public var file_unique_id: String
        public var width: Int
        public var height: Int
        public var file_size: Int?

        public init(file_id: String, file_unique_id: String, width: Int, height: Int, file_size: Int? = nil) {
            self.file_id = file_id
            self.file_unique_id = file_unique_id
            self.width = width
            self.height = height
            self.file_size = file_size
        }
    }

    /// A voice note (OGG/Opus).
    public struct Voice: Codable, Sendable, Equatable {
        public var file_id: String
        public var file_unique_id: String
        /// In seconds (optional here, though Telegram always sends it: a surprise costs the length, not the message).
        public var duration: Int?
        public var mime_type: String?
        public var file_size: Int?
    }

    /// A music or audio file.
    public struct Audio: Codable, Sendable, Equatable {
        public var file_id: String
        public var file_unique_id: String
        public var duration: Int?
        public var file_name: String?
        public var mime_type: String?
        public var file_size: Int?
    }

    /// A round video message (MP4); its sound is transcribed.
    public struct VideoNote: Codable, Sendable, Equatable {
        public var file_id: String
        public var file_unique_id: String
        public var duration: Int?
        public var file_size: Int?
    }

    /// A file sent as a document.
    public struct Document: Codable, Sendable, Equatable {
        public var file_id: String
        public var file_unique_id: String
        public var file_name: String?
        public var mime_type: String?
        public var file_size: Int?

        public init(file_id: String, file_unique_id: String, file_name: String? = nil, mime_type: String? = nil, file_size: Int? = nil) {
            self.file_id = file_id
            self.file_unique_id = file_unique_id
            self.file_name = file_name
            self.mime_type = mime_type
            self.file_size = file_size
        }
    }

    /// The part of the replied-to message the user quoted.
    public struct TextQuote: Codable, Sendable, Equatable {
        public var text: String
        public var position: Int?
        public var is_manual: Bool?
    }

    public struct Message: Codable, Sendable, Equatable {
        public var message_id: Int
        public var message_thread_id: Int?
        public var from: User?
        public var chat: Chat
        public var date: Int
        public var text: String?
        public var entities: [MessageEntity]?
        public var caption: String?
        var caption_entities: [MessageEntity]?
        // The rarer, larger parts are boxed: a message is copied into every task and frame that
        // handles it, and inline they made it 970 bytes instead of 200.
        @Boxed public var reply_to_message: RepliedMessage?
        /// The part of `reply_to_message` the user quoted, when they quoted.
        @Boxed public var quote: TextQuote?
        /// A file sent as a document.
        @Boxed public var document: Document?
        public var photo: [PhotoSize]?
        @Boxed public var voice: Voice?
        @Boxed public var audio: Audio?
        @Boxed public var video_note: VideoNote?
        /// Shared by the messages of one album.
        public var media_group_id: String?
        /// Set in the service message a group leaves behind when it becomes a supergroup.
        public var migrate_to_chat_id: Int64?
        /// True for photos, stickers, voice notes, files and every other non-text content.
        public var hasNonTextContent: Bool = false

        enum CodingKeys: String, CodingKey {
            case message_id, message_thread_id, from, chat, date, text, entities, caption, caption_entities, reply_to_message, quote
            case document, photo, voice, audio, video_note, media_group_id, migrate_to_chat_id
            /// Ours, not Telegram's: keeps the flag when a message is stored and read back.
            case hasNonTextContent = "x_has_non_text_content"
        }

        /// Content keys that make a message something other than text.
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        static let nonTextKeys = [
            "photo", "sticker", "voice", "audio", "document", "video", "video_note", "animation", "location",
            "contact", "poll", "venue", "dice", "game", "story",
        ]

        public init(
            message_id: Int, message_thread_id: Int? = nil, from: User?, chat: Chat, date: Int, text: String?,
            entities: [MessageEntity]? = nil, reply_to_message: RepliedMessage? = nil
        ) {
            self.message_id = message_id
            self.message_thread_id = message_thread_id
            self.from = from
            self.chat = chat
            self.date = date
            self.text = text
            self.entities = entities
            self.reply_to_message = reply_to_message
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            message_id = try container.decode(Int.self, forKey: .message_id)
            message_thread_id = try container.decodeIfPresent(Int.self, forKey: .message_thread_id)
            from = try container.decodeIfPresent(User.self, forKey: .from)
            chat = try container.decode(Chat.self, forKey: .chat)
            date = try container.decode(Int.self, forKey: .date)
            text = try container.decodeIfPresent(String.self, forKey: .text)
            entities = try container.decodeIfPresent([MessageEntity].self, forKey: .entities)
            caption = try container.decodeIfPresent(String.self, forKey: .caption)
            caption_entities = try container.decodeIfPresent([MessageEntity].self, forKey: .caption_entities)
            reply_to_message = try container.decodeIfPresent(RepliedMessage.self, forKey: .reply_to_message)
            quote = try container.decodeIfPresent(TextQuote.self, forKey: .quote)
            document = try container.decodeIfPresent(Document.self, forKey: .document)
            photo = try container.decodeIfPresent([PhotoSize].self, forKey: .photo)
            voice = try container.decodeIfPresent(Voice.self, forKey: .voice)
            audio = try container.decodeIfPresent(Audio.self, forKey: .audio)
            video_note = try container.decodeIfPresent(VideoNote.self, forKey: .video_note)
            media_group_id = try container.decodeIfPresent(String.self, forKey: .media_group_id)
            migrate_to_chat_id = try container.decodeIfPresent(Int64.self, forKey: .migrate_to_chat_id)
            let all = try decoder.container(keyedBy: AnyKey.self)
            hasNonTextContent =
                (try container.decodeIfPresent(Bool.self, forKey: .hasNonTextContent) ?? false)
                || Self.nonTextKeys.contains { all.contains(AnyKey(stringValue: $0)) }
        }

        /// As the synthesized form would write it (absent values left out), without the boxes.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(message_id, forKey: .message_id)
            try container.encodeIfPresent(message_thread_id, forKey: .message_thread_id)
            try container.encodeIfPresent(from, forKey: .from)
            try container.encode(chat, forKey: .chat)
            try container.encode(date, forKey: .date)
            try container.encodeIfPresent(text, forKey: .text)
            try container.encodeIfPresent(entities, forKey: .entities)
            try container.encodeIfPresent(caption, forKey: .caption)
            try container.encodeIfPresent(caption_entities, forKey: .caption_entities)
            try container.encodeIfPresent(reply_to_message, forKey: .reply_to_message)
            try container.encodeIfPresent(quote, forKey: .quote)
            try container.encodeIfPresent(document, forKey: .document)
            try container.encodeIfPresent(photo, forKey: .photo)
            try container.encodeIfPresent(voice, forKey: .voice)
            try container.encodeIfPresent(audio, forKey: .audio)
            try container.encodeIfPresent(video_note, forKey: .video_note)
            try container.encodeIfPresent(media_group_id, forKey: .media_group_id)
            try container.encodeIfPresent(migrate_to_chat_id, forKey: .migrate_to_chat_id)
            try container.encode(hasNonTextContent, forKey: .hasNonTextContent)
        }
    }

    /// Sent when the user presses the stop button of a draft shown with `can_stop`.
    public struct MessageGenerationStopped: Codable, Sendable, Equatable {
        public var chat: Chat
        public var message_thread_id: Int?
        public var draft_id: Int64
    }

    public struct Update: Codable, Sendable, Equatable {
        public var update_id: Int64
        public var message: Message?
        public var stopped_message_generation: MessageGenerationStopped?

        public init(update_id: Int64, message: Message? = nil, stopped_message_generation: MessageGenerationStopped? = nil) {
            self.update_id = update_id
            self.message = message
            self.stopped_message_generation = stopped_message_generation
        }
    }

    /// One element of a getUpdates answer, decoded on its own: Telegram adds kinds and fields every
    /// few months, and one shape this version does not understand must not fail the whole batch.
    public enum PolledUpdate: Decodable, Sendable {
        case update(Update)
        /// Not understood. `fieldPath` names where decoding failed (`message.entities`); the update's
        /// content is never kept, so nothing a user wrote can reach a log through it.
        case undecodable(updateID: Int64?, fieldPath: String, problem: String)

        private enum Keys: String, CodingKey { case update_id }

        public init(from decoder: any Decoder) throws {
            do {
                self = .update(try Update(from: decoder))
            } catch let error as DecodingError {
                let id = try? decoder.container(keyedBy: Keys.self).decode(Int64.self, forKey: .update_id)
                let (path, problem) = Self.describe(error, below: decoder.codingPath.count)
                self = .undecodable(updateID: id, fieldPath: path, problem: problem)
            }
        }

        /// The update, when it decoded.
        public var update: Update? {
            if case .update(let update) = self { update } else { nil }
        }

        public var updateID: Int64? {
            switch self {
            case .update(let update): update.update_id
            case .undecodable(let id, _, _): id
            }
        }

        /// The failing field relative to the update, and what kind of failure it was (no values).
        private static func describe(_ error: DecodingError, below depth: Int) -> (String, String) {
            let (path, problem): ([any CodingKey], String) =
                switch error {
                case .typeMismatch(_, let context): (context.codingPath, "type_mismatch")
                case .valueNotFound(_, let context): (context.codingPath, "value_not_found")
                case .keyNotFound(let key, let context): (context.codingPath + [key], "key_not_found")
                case .dataCorrupted(let context): (context.codingPath, "data_corrupted")
                @unknown default: ([], "unknown")
                }
            let field = path.dropFirst(depth).map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return (field.isEmpty ? "(the update itself)" : field, problem)
        }
    }

    /// The update types this bot asks for; passed explicitly because an omitted list reuses
    /// whatever an earlier client set.
    public static let allowedUpdates = ["message", "stopped_message_generation"]

    /// A file users sent, as `getFile` describes it.
    public struct File: Codable, Sendable, Equatable {
        public var file_id: String
        public var file_unique_id: String
        /// In bytes, when Telegram knows it.
        public var file_size: Int?
        /// Where to download it, relative to `/file/bot<token>/`; valid for at least an hour.
        public var file_path: String?

        public init(file_id: String, file_unique_id: String, file_size: Int? = nil, file_path: String? = nil) {
            self.file_id = file_id
            self.file_unique_id = file_unique_id
            self.file_size = file_size
            self.file_path = file_path
        }
    }

    public struct BotCommand: Codable, Sendable, Equatable {
        public var command: String
        public var description: String

        public init(command: String, description: String) {
            self.command = command
            self.description = description
        }
    }

    struct ReplyParameters: Encodable {
        var message_id: Int
        var allow_sending_without_reply = true
    }
}
