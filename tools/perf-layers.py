#!/usr/bin/env python3
"""Shares of a process's CPU by layer, from `perf script` stacks.

    perf record -F 6000 --call-graph dwarf,32768 -p PID -o perf.data -- sleep 100
    perf script -i perf.data -F ip,sym | swift demangle --simplified > stacks.txt
    tools/perf-layers.py stacks.txt

Each sample goes to the innermost frame that names a layer (a `malloc` inside `JSONEncoder` is
the encoder's); samples that name none are "the rest", listed by their innermost frame of ours.
"""
import collections
import re
import sys

LAYERS = [
    ("store: SQLite, GRDB, fdatasync", r"sqlite3|GRDB|SQLiteStore|SerializedDatabase|DatabasePool|Database\."),
    ("Telegram requests: JSONEncoder", r"JSONEncoder|Encodable\.encode|encode\(to:\)"),
    ("answers: JSON decoding", r"JSONDecoder|Decodable|init\(from:\)"),
    ("model stream: SSE and event JSON", r"SSEDecoder|JSONValue|ChatChunk|ChatCompletionStream"),
    ("drafts: Markdown, splitting", r"MarkdownRenderer|ReplyPresenter|FormattedText"),
    ("logging", r"LogHandler|LogSink|Logger\."),
    ("HTTP: libcurl, socket calls, transfers", r"curl_|Curl_|libcurl|Transfer\.|HTTPClient|ccurl"),
    ("event loop: waits and wake-ups", r"epoll_wait|__schedule|EventLoop\.wake|EventLoop\.post|EventLoop\.touch|eventfd"),
]
OURS = re.compile(r"TelegramFrontEnd|Conversation|TelegramBotAPI|AssistantStore|Support|OpenAIClient|EventLoop|Intake|Dispatcher|Pipeline")


def main(path: str) -> None:
    blocks = open(path, encoding="utf-8", errors="replace").read().split("\n\n")
    samples = [[line.strip().split(None, 1)[-1] for line in block.split("\n") if line.strip()] for block in blocks]
    samples = [frames for frames in samples if frames]
    layers = [(name, re.compile(pattern)) for name, pattern in LAYERS]
    shares, rest = collections.Counter(), collections.Counter()
    for frames in samples:
        layer = next((name for frame in frames for name, pattern in layers if pattern.search(frame)), None)
        if layer is None:
            layer = "the rest"
            rest[next((frame[:90] for frame in frames if OURS.search(frame)), "(runtime or kernel) " + frames[0][:60])] += 1
        shares[layer] += 1
    total = len(samples)
    print(f"{total} samples")
    for name, count in shares.most_common():
        print(f"{100 * count / total:5.1f}%  {name}")
    print("the rest, by innermost frame of ours:")
    for name, count in rest.most_common(15):
        print(f"{100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
