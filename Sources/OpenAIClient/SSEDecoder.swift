import Foundation

/// A synchronous decoder for `text/event-stream` bodies that is correct for any split of the byte
/// stream: events, lines, CRLF pairs and multi-byte UTF-8 characters may all be cut across chunks.
///
/// It works on bytes and only turns a complete line into a `String`, so a UTF-8 sequence split across
/// two network reads is never decoded half-way. Comments (`: keep-alive`) and fields other than
/// `data` are skipped; an event is dispatched at the blank line that ends it, its `data` lines joined
/// with `\n` as the SSE specification says.
///
/// Memory is bounded: an event (or a line) larger than `maxEventBytes` is an error, so a server that
/// never sends a newline cannot make the bot buffer without end.
public struct SSEDecoder: Sendable {
    /// Thrown when one event grows past `maxEventBytes`.
    struct EventTooLarge: Error, Sendable {}

    let maxEventBytes: Int
    private var line: [UInt8] = []
    private var dataLines: [String] = []
    private var dataBytes = 0
    private var hasData = false
    /// True when the previous chunk ended in `\r`, so a leading `\n` in the next chunk belongs to it.
    private var pendingCR = false

    /// 1 MiB by default: a chunk of a chat completion is a few hundred bytes.
    public init(maxEventBytes: Int = 1 << 20) {
        self.maxEventBytes = maxEventBytes
    }

    /// Feeds the next chunk of bytes; returns the `data` payloads of every event it completed.
    public mutating func feed(_ data: Data) throws -> [String] {
        try data.withUnsafeBytes { try feed(buffer: $0) }
    }

    /// Feeds the next chunk of bytes; returns the `data` payloads of every event it completed.
    public mutating func feed(_ bytes: ArraySlice<UInt8>) throws -> [String] {
        try bytes.withUnsafeBytes { try feed(buffer: $0) }
    }

    /// Scans for line ends and copies whole runs of bytes, not one byte at a time.
    private mutating func feed(buffer: UnsafeRawBufferPointer) throws -> [String] {
        var events: [String] = []
        let count = buffer.count
        guard count > 0 else { return events }
        var index = 0
        if pendingCR {
            pendingCR = false
            if buffer[0] == Self.lf { index = 1 }
        }
        var runStart = index
        while index < count {
            let byte = buffer[index]
            if byte == Self.lf || byte == Self.cr {
                line.append(contentsOf: buffer[runStart..<index])
                endLine(into: &events)
                if byte == Self.cr {
                    if index + 1 < count {
                        if buffer[index + 1] == Self.lf { index += 1 }
                    } else {
                        pendingCR = true
                    }
                }
                runStart = index + 1
            }
            index += 1
        }
        if runStart < count { line.append(contentsOf: buffer[runStart..<count]) }
        if line.count + dataBytes > maxEventBytes {
            line.removeAll()
            dataLines.removeAll()
            dataBytes = 0
            hasData = false
            throw EventTooLarge()
        }
        return events
    }

    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")

    /// Call at the end of the stream: returns an event that was complete except for its final blank
    /// line (some servers close the connection right after the last `data:` line).
    public mutating func finish() -> [String] {
        var events: [String] = []
        if !line.isEmpty { endLine(into: &events) }
        if hasData { dispatch(into: &events) }
        return events
    }

    private mutating func endLine(into events: inout [String]) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            dispatch(into: &events)
            return
        }
        if line[0] == UInt8(ascii: ":") { return }  // comment / keep-alive
        let field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            field = line[...]
            value = []
        }
        guard field.elementsEqual("data".utf8) else { return }
        dataLines.append(String(decoding: value, as: UTF8.self))
        dataBytes += value.count + 1
        hasData = true
    }

    private mutating func dispatch(into events: inout [String]) {
        guard hasData else { return }
        events.append(dataLines.count == 1 ? dataLines[0] : dataLines.joined(separator: "\n"))
        dataLines.removeAll(keepingCapacity: true)
        dataBytes = 0
        hasData = false
    }
}
