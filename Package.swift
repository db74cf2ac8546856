// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "telegram-assistant",
    platforms: [.macOS(.v15)],
    products: [
        .executable(
            name: "telegram-assistant",
            targets: [
                "telegram-assistant", "TelegramAssistant", "TelegramFrontEnd", "TerminalFrontEnd", "Conversation",
                "AssistantStore", "PostgresStore", "ClusterServer", "TelegramBotAPI", "OpenAIClient", "CurlHTTP", "Support",
            ]),
        .executable(name: "telegram-assistant-bench", targets: ["Benchmarks"]),
        .executable(name: "telegram-assistant-fakes", targets: ["Fakes"]),
    ],
    // `--traits Cluster` adds PostgreSQL, webhooks and /metrics (README, "Scaling out"). The default
    // build compiles none of the NIO-based packages they need.
    traits: [
        .trait(name: "Cluster", description: "PostgreSQL storage, webhook mode, replicas and /metrics, on postgres-nio and Hummingbird"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // Cluster only.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // libcurl's headers (libcurl4-openssl-dev, from deploy/install-deps.sh), with typed wrappers
        // for its variadic option setters.
        .systemLibrary(name: "CCurl"),
        // Our HTTP client: libcurl's multi interface on one event thread, streamed bodies in batches.
        .target(name: "CurlHTTP", dependencies: ["CCurl"]),
        // The layers, each a module; dependencies point one way (see README, "Layout").
        // Clock helpers, backoff, token bucket, the race helper, secrets: under everything.
        .target(name: "Support"),
        // The OpenAI-compatible chat-completions client: wire types, SSE, retries, fallback.
        .target(name: "OpenAIClient", dependencies: ["CurlHTTP", "Support"]),
        // The Telegram Bot API: wire types, client, send scheduler, Markdown to entities, splitting.
        .target(name: "TelegramBotAPI", dependencies: ["CurlHTTP", "Support", .product(name: "Logging", package: "swift-log")]),
        // Storage behind its own API (SQLite through GRDB); knows neither wire protocol.
        .target(
            name: "AssistantStore",
            dependencies: ["Support", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift")]),
        // The same storage API on PostgreSQL (Cluster only): replicas share one database.
        .target(
            name: "PostgresStore",
            dependencies: [
                "AssistantStore", "Support", .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Cluster"])),
            ]),
        // The engine both front ends share: history window, model calls, the shared commands.
        .target(name: "Conversation", dependencies: ["OpenAIClient", "AssistantStore", "Support", .product(name: "Logging", package: "swift-log")]),
        // The Telegram bot: intake, per-chat dispatch, access policy, the reply pipeline and presenter.
        .target(
            name: "TelegramFrontEnd",
            dependencies: [
                "Conversation", "TelegramBotAPI", "AssistantStore", "Support",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]),
        // The Cluster build's HTTP listener (Hummingbird): /metrics, /healthz, /readyz.
        .target(
            name: "ClusterServer",
            dependencies: [
                "TelegramFrontEnd", "TelegramBotAPI", "AssistantStore", "Support",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["Cluster"])),
                .product(name: "HTTPTypes", package: "swift-http-types", condition: .when(traits: ["Cluster"])),
                .product(name: "Metrics", package: "swift-metrics", condition: .when(traits: ["Cluster"])),
                .product(name: "Prometheus", package: "swift-prometheus", condition: .when(traits: ["Cluster"])),
            ]),
        // The terminal chat.
        .target(
            name: "TerminalFrontEnd",
            dependencies: [
                "Conversation", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // Configuration and the one composition root: the only module that knows every other.
        .target(
            name: "TelegramAssistant",
            dependencies: [
                "CurlHTTP", "Support", "OpenAIClient", "TelegramBotAPI", "AssistantStore", "PostgresStore", "Conversation",
                "TelegramFrontEnd", "TerminalFrontEnd", "ClusterServer",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "telegram-assistant",
            dependencies: [
                "TelegramAssistant",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fake servers that speak the real wire protocols over 127.0.0.1. Only tests depend on it.
        .target(
            name: "TestSupport",
            dependencies: []
        ),
        // Prints measurements (table and JSON) against the fake servers; not part of the product.
        .executableTarget(
            name: "Benchmarks",
            dependencies: ["TelegramAssistant", "TelegramFrontEnd", "TerminalFrontEnd", "Conversation", "AssistantStore", "TelegramBotAPI", "OpenAIClient", "CurlHTTP", "Support", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The fake servers as a program, for trying the real binary by hand; not part of the product.
        .executableTarget(
            name: "Fakes",
            dependencies: ["TestSupport"]
        ),
        .testTarget(
            name: "CurlHTTPTests",
            dependencies: ["CCurl", "CurlHTTP", "TestSupport"]
        ),
        .testTarget(
            name: "TelegramAssistantTests",
            dependencies: ["TelegramAssistant", "TelegramFrontEnd", "TerminalFrontEnd", "Conversation", "AssistantStore", "PostgresStore", "ClusterServer", "TelegramBotAPI", "OpenAIClient", "CurlHTTP", "Support", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
