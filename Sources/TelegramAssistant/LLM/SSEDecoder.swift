/// A synchronous decoder for `text/event-stream` bodies that is correct for any split of the byte
/// stream: events, lines, CRLF pairs and multi-byte UTF-8 characters may all be cut across chunks.
///
/// It works on bytes and only turns a complete line into a `String`, so a UTF-8 sequence split across
/// two network reads is never decoded half-way. Comments (`: keep-alive`) and fields other than
/// `data` are skipped; an event is dispatched at the blank line that ends it, its `data` lines joined
/// with `\n` as the SSE specification says.
public struct SSEDecoder: Sendable {
    private var line: [UInt8] = []
    private var dataLines: [String] = []
    private var hasData = false
    /// True when the previous chunk ended in `\r`, so a leading `\n` in the next chunk belongs to it.
    private var pendingCR = false

    public init() {}

    /// Feeds the next chunk of bytes; returns the `data` payloads of every event it completed.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) -> [String] where Bytes.Element == UInt8 {
        var events: [String] = []
        for byte in bytes {
            if pendingCR {
                pendingCR = false
                if byte == UInt8(ascii: "\n") { continue }
            }
            switch byte {
            case UInt8(ascii: "\n"):
                endLine(into: &events)
            case UInt8(ascii: "\r"):
                pendingCR = true
                endLine(into: &events)
            default:
                line.append(byte)
            }
        }
        return events
    }

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
        hasData = true
    }

    private mutating func dispatch(into events: inout [String]) {
        guard hasData else { return }
        events.append(dataLines.count == 1 ? dataLines[0] : dataLines.joined(separator: "\n"))
        dataLines.removeAll(keepingCapacity: true)
        hasData = false
    }
}
