import Foundation

/// Lines from standard input as an async sequence. A dedicated thread does the blocking reads, so no
/// task of the cooperative pool waits on the keyboard; the sequence ends at end of input (Ctrl-D).
public enum StandardInput {
    public static func lines() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let reader = Thread {
            while let line = readLine(strippingNewline: true) {
                if case .terminated = continuation.yield(line) { return }
            }
            continuation.finish()
        }
        reader.name = "stdin-reader"
        reader.start()
        return stream
    }
}
