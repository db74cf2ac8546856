import Conversation
import Support
import Synchronization
import TelegramBotAPI

/// Shows one answer in one chat as it is generated: a passive view that the reply pipeline feeds
/// (`append`), runs beside the model (`display`) and closes (`finish`).
///
/// Private chats see a draft (`sendMessageDraft`, one draft id per reply, with a stop button) that
/// the final `sendMessage` replaces; groups, and servers without drafts, see a message that is
/// edited as text arrives and finally edited into the complete answer. Intermediate updates go only
/// when the scheduler has budget to spare; the final text always goes. Text over 4096 code points
/// continues in new messages. The typing indicator runs until text is visible.
final class ReplyPresenter: Sendable {
    struct State {
        var text = ""
        var version = 0
        var shownVersion = 0
        /// Parts already sent in their final form.
        var committed = 0
        /// The message being edited while streaming (edit mode), and which part it holds.
        var current: (messageID: Int, part: Int)?
        var firstVisible: Duration?
        /// The journal marked the update handled with the last part: nothing is left to record.
        var journalClosed = false
        /// Drafts render only the paragraphs that changed.
        var markdown = MarkdownRenderer.Incremental()
        var useDrafts: Bool
    }

    let chat: ChatHandle
    let sender: TelegramSender
    let drafts: DraftSupport
    let draftID: Int64
    /// The user's message, quoted by the first part in groups.
    let replyTo: Int?
    let metrics = ReplyMetrics()
    /// The shortest gap between two attempts to show new text; the scheduler decides what goes.
    let tick: Duration
    let typingInterval: Duration
    let clock: any Clock<Duration>
    /// The bot's time line, for when text first became visible.
    let stopwatch: Stopwatch
    let journal: ReplyJournal?
    private let state: Mutex<State>
    private let changed = ChangeSignal()

    init(
        chat: ChatHandle, sender: TelegramSender, drafts: DraftSupport, draftID: Int64, replyTo: Int?,
        tick: Duration, typingInterval: Duration = .seconds(4), clock: any Clock<Duration>, stopwatch: Stopwatch,
        journal: ReplyJournal? = nil
    ) {
        self.stopwatch = stopwatch
        self.journal = journal
        self.chat = chat
        self.sender = sender
        self.drafts = drafts
        self.draftID = draftID
        self.replyTo = replyTo
        self.tick = tick
        self.typingInterval = typingInterval
        self.clock = clock
        state = Mutex(State(useDrafts: !chat.isGroup && drafts.isSupported))
    }

    /// When text first became visible to the user, on the bot's stopwatch.
    var firstVisible: Duration? { state.withLock { $0.firstVisible } }
    /// Whether the delivery of the last part already marked the update handled.
    var journalClosed: Bool { state.withLock { $0.journalClosed } }

    /// Shows what is appended as it comes (and the typing indicator until text is visible), until
    /// cancelled: the pipeline runs it beside the model call.
    func display() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.typing() }
            group.addTask { await self.pump() }
        }
    }

    /// The one way text is rendered, while streaming and at the end: the answer's Markdown as
    /// entities, and any notice in italics after it.
    static func render(answer: String, notice: String?) -> FormattedText {
        var text = MarkdownRenderer.render(answer)
        if let notice {
            if !text.text.isEmpty { text.append("\n\n") }
            text.wrap("italic") { $0.append(notice) }
        }
        return text
    }

    /// The final text of a reply: the answer with the outcome's notice; a failure's notice alone,
    /// as plain text.
    static func render(_ outcome: ReplyOutcome) -> FormattedText {
        guard var answer = outcome.answer else {
            return FormattedText(text: outcome.notice ?? "Something went wrong. Please try again.")
        }
        if case .interrupted = outcome { answer = String(answer.reversed().drop(while: \.isWhitespace).reversed()) }
        let text = render(answer: answer, notice: outcome.notice)
        return text.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? FormattedText(text: "(empty answer)") : text
    }

    /// Delivers the final text: written to the journal first, then every part not yet sent in its
    /// final form. It waits out any `retry_after` and backoff; it throws `CancellationError` when
    /// shutdown comes first (the journal then holds what is left to deliver), or the
    /// `TelegramError` that made delivery impossible.
    func finish(_ text: FormattedText) async throws {
        let (committed, current) = state.withLock { ($0.committed, $0.current) }
        await journal?.finalReady(text, committed, current)
        try await withCancellationDelay(Self.lastCall, clock: clock) { try await self.deliver(text) }
    }

    /// How long a final text may still wait for Telegram's budget once shutdown has cut its reply
    /// off; what would take longer is delivered after the restart.
    static let lastCall: Duration = .seconds(5)

    /// Delivers a final text saved before a restart: the parts not yet sent, editing the message
    /// that was streaming when there is one.
    func resume(_ text: FormattedText, partsSent: Int, streamMessage: (messageID: Int, part: Int)?) async throws {
        state.withLock {
            $0.committed = partsSent
            $0.current = streamMessage
        }
        try await withCancellationDelay(Self.lastCall, clock: clock) { try await self.deliver(text) }
    }

    /// New text from the model.
    func append(_ piece: String) {
        state.withLock {
            $0.text += piece
            $0.version += 1
        }
        changed.notify()
    }

    /// The typing indicator from the start until text is visible, refreshed before it expires.
    private func typing() async {
        while !Task.isCancelled, state.withLock({ $0.firstVisible == nil }) {
            await sender.typing(chat, metrics: metrics)
            do {
                try await clock.sleep(for: typingInterval)
            } catch {
                return
            }
        }
    }

    /// Shows new text as soon as the chat's budget allows (the first text at once); the scheduler
    /// decides whether an update actually goes, so a busy bot shows fewer of them.
    ///
    /// The model's text comes at most once per `tick` (the pipeline asks the HTTP client to hand it
    /// over no more often, see `ReplyPipeline`). Telegram allows a chat about one update a second,
    /// so text that comes sooner waits for the budget, and is rendered once when it may go, not on
    /// every hand-over. Text the scheduler held back anyway is tried again a tick later.
    private func pump() async {
        while !Task.isCancelled {
            await changed.wait()
            guard !Task.isCancelled else { return }
            let wait = await sender.untilIntermediate(chat)
            if wait > .zero {
                changed.notify()  // the text waits for the budget
                guard (try? await clock.sleep(for: max(wait, tick))) != nil else { return }
                continue
            }
            try? await showIntermediate()
            guard state.withLock({ $0.version != $0.shownVersion }) else { continue }
            changed.notify()  // text the scheduler held back
            guard (try? await clock.sleep(for: tick)) != nil else { return }
        }
    }

    private func showIntermediate() async throws {
        let (text, version, markdown) = state.withLock { ($0.text, $0.version, $0.markdown) }
        // Only the pump renders drafts, one at a time: the renderer is taken out and put back.
        var renderer = markdown
        let parts = renderer.render(text).split()
        state.withLock { $0.markdown = renderer }
        if try await sync(parts, final: false) {
            state.withLock { $0.shownVersion = max($0.shownVersion, version) }
        }
    }

    /// Sends the complete answer: every part not yet sent in its final form.
    private func deliver(_ text: FormattedText) async throws {
        let parts = text.text.isEmpty ? [] : text.split()
        _ = try await sync(parts, final: true)
    }

    /// Brings the chat up to date with `parts`. Parts before the last are complete once a later part
    /// exists; the last part is complete only when `final`. Returns false when the scheduler held
    /// back the update of the part still being written.
    private func sync(_ parts: [FormattedText], final: Bool) async throws -> Bool {
        let committed = state.withLock { $0.committed }
        guard committed < parts.count else { return true }
        var shown = true
        for index in committed..<parts.count {
            let part = parts[index]
            let complete = final || index < parts.count - 1
            let (current, useDrafts) = state.withLock { ($0.current, $0.useDrafts) }
            let quote = index == 0 && chat.isGroup ? replyTo : nil
            if complete {
                // The sender never cuts a request off half-way (a half-done send would be sent again
                // and show the part twice); cancellation only ends its waiting between requests.
                if let current, current.part == index {
                    do {
                        try await sender.editFinal(chat, messageID: current.messageID, part, metrics: metrics)
                    } catch TelegramError.messageToEditNotFound {
                        // Deleted, or left behind in a group that became a supergroup: send it anew.
                        try await sender.sendFinal(chat, part, replyTo: quote, metrics: metrics)
                    }
                } else {
                    try await sender.sendFinal(chat, part, replyTo: quote, metrics: metrics)
                }
                let now = stopwatch.elapsed
                state.withLock {
                    $0.committed = index + 1
                    $0.current = nil
                    if $0.firstVisible == nil { $0.firstVisible = now }
                }
                if final, index == parts.count - 1, let journal {
                    await journal.delivered()
                    state.withLock { $0.journalClosed = true }
                } else {
                    await journal?.partsSent(index + 1)
                }
                continue
            }
            // The part still being written. Once a send has started it runs to its end, like a final
            // one: an answer that completes meanwhile must edit the message that send creates, not
            // leave it behind and send the text again.
            shown = try await shielded { [self] in
                try await showUnfinished(part, index: index, current: current, useDrafts: useDrafts, quote: quote)
            }
            if shown { markVisible() }
        }
        return shown
    }

    /// Shows the part still being written: a draft, an edit, or the message that later edits update.
    /// Returns false when the scheduler held the update back.
    private func showUnfinished(
        _ part: FormattedText, index: Int, current: (messageID: Int, part: Int)?, useDrafts: Bool, quote: Int?
    ) async throws -> Bool {
        if useDrafts {
            do {
                return try await sender.draft(chat, draftID: DraftID.part(index, of: draftID), part, metrics: metrics)
            } catch TelegramError.notFound {
                drafts.markUnsupported()  // an older Bot API server: stream by editing instead
                state.withLock { $0.useDrafts = false }
                return false
            } catch TelegramError.badRequest {
                state.withLock { $0.useDrafts = false }
                return false
            }
        }
        if let current, current.part == index {
            do {
                return try await sender.editIntermediate(chat, messageID: current.messageID, part, metrics: metrics)
            } catch TelegramError.messageToEditNotFound {
                // Deleted while streaming: start a new message on the next tick, never retry the edit.
                state.withLock { $0.current = nil }
                return false
            }
        }
        guard let message = try await sender.sendIntermediate(chat, part, replyTo: quote, metrics: metrics) else { return false }
        state.withLock { $0.current = (message.message_id, index) }
        return true
    }

    private func markVisible() {
        let now = stopwatch.elapsed
        state.withLock { if $0.firstVisible == nil { $0.firstVisible = now } }
    }
}
