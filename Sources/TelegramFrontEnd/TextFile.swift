import Foundation
import TelegramBotAPI

/// A document the model can read as text (plain text, Markdown, source code, JSON, CSV, logs, …),
/// and how it goes into the user's turn: a fenced block with its file name, after the caption.
struct TextFile: Sendable {
    var name: String
    var text: String
    /// The file was longer than the limit and `text` is its beginning (the total when known).
    var cut: (shownBytes: Int, totalBytes: Int?)?

    /// Extensions of text files people commonly send.
    static let textExtensions: Set<String> = [
        "txt", "text", "md", "markdown", "rst", "csv", "tsv", "log", "json", "jsonl", "ndjson", "yaml", "yml", "toml", "ini", "cfg",
        "conf", "env", "xml", "html", "htm", "css", "scss", "svg", "tex", "srt", "vtt", "diff", "patch", "sql", "graphql", "proto",
        "sh", "bash", "zsh", "fish", "ps1", "bat", "py", "rb", "pl", "php", "lua", "r", "swift", "kt", "kts", "java", "scala", "groovy",
        "gradle", "c", "h", "cc", "cpp", "cxx", "hpp", "hh", "m", "mm", "cs", "fs", "go", "rs", "zig", "nim", "dart", "js", "mjs", "cjs",
        "jsx", "ts", "tsx", "vue", "svelte", "hs", "ml", "ex", "exs", "erl", "clj", "lisp", "el", "vim", "dockerfile", "makefile", "cmake",
        "tf", "hcl", "nix", "gitignore", "editorconfig", "properties", "lock",
    ]

    /// Text-like by its MIME type or, when Telegram sends a generic one, by its extension.
    static func isText(_ document: Telegram.Document) -> Bool {
        let mime = (document.mime_type ?? "").lowercased()
        if mime.hasPrefix("text/") { return true }
        if ["application/json", "application/xml", "application/x-yaml", "application/yaml", "application/toml", "application/sql",
            "application/javascript", "application/x-javascript", "application/x-sh", "application/x-python", "application/x-ndjson",
            "application/csv", "application/x-subrip"].contains(mime) || mime.hasSuffix("+json") || mime.hasSuffix("+xml")
        {
            return true
        }
        let name = (document.file_name ?? "").lowercased()
        let ext = name.split(separator: ".").last.map(String.init) ?? ""
        return textExtensions.contains(ext) || ["dockerfile", "makefile", "readme", "license"].contains(name)
    }

    /// Reads `bytes` as UTF-8 text, keeping at most `limit` bytes (cut at a character boundary).
    /// Nil when the bytes are not UTF-8 text (a binary file with a text-like name). `statedSize` is
    /// the whole file's size when only its beginning was downloaded.
    init?(name: String, bytes: [UInt8], limit: Int, statedSize: Int? = nil) {
        var shown = bytes.count > limit ? Array(bytes[..<limit]) : bytes
        if bytes.count > limit, !shown.isEmpty {
            // Drop a character the cut split: the bytes from its lead byte on, when fewer than it needs.
            var start = shown.count - 1
            while start > 0, shown[start] & 0xC0 == 0x80 { start -= 1 }
            let lead = shown[start]
            let needed = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if shown.count - start < needed { shown.removeSubrange(start...) }
        }
        guard let text = String(validating: shown, as: UTF8.self), !text.utf8.contains(0) else { return nil }
        self.name = name
        self.text = text
        cut = bytes.count > limit ? (shown.count, statedSize ?? (bytes.count > limit + 1 ? bytes.count : nil)) : nil
    }

    /// The user's turn: the caption (or a plain request), then the file in a fence longer than any
    /// run of backticks inside it, then a note when it was cut.
    func turn(caption: String?) -> String {
        let longestRun = text.split(omittingEmptySubsequences: true) { $0 != "`" }.map(\.count).max() ?? 0
        let fence = String(repeating: "`", count: max(3, longestRun + 1))
        var turn = (caption?.isEmpty == false ? caption! : "Here is a file.") + "\n\nFile: \(name)\n\(fence)\n\(text)"
        if !text.hasSuffix("\n") { turn += "\n" }
        turn += fence
        if let cut {
            let size = cut.totalBytes.map { "is \(Self.kilobytes($0)) KB" } ?? "is longer"
            turn += "\n[The file \(size); only its first \(Self.kilobytes(cut.shownBytes)) KB are shown.]"
        }
        return turn
    }

    static func kilobytes(_ bytes: Int) -> Int { (bytes + 1023) / 1024 }
}
