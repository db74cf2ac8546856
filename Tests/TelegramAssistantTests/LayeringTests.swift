import Foundation
import Testing

/// The modules' dependencies point one way (README, "Layout"). The compiler enforces what
/// Package.swift allows; this keeps Package.swift and the sources from drifting from the picture.
@Suite struct LayeringTests {
    static let ours: Set<String> = [
        "Support", "CCurl", "CurlHTTP", "OpenAIClient", "TelegramBotAPI", "AssistantStore", "PostgresStore", "ClusterServer", "Conversation", "TelegramFrontEnd",
        "TerminalFrontEnd", "TelegramAssistant",
    ]

    /// What each module may import: ours, then the libraries.
    static let allowed: [String: Set<String>] = [
        "Support": ["Glibc", "Synchronization"],
        "CurlHTTP": ["CCurl", "FoundationEssentials", "Glibc", "Synchronization"],
        "OpenAIClient": ["CurlHTTP", "Support", "Foundation", "Synchronization"],
        "TelegramBotAPI": ["CurlHTTP", "Support", "Foundation", "Logging", "Synchronization"],
        "AssistantStore": ["Support", "GRDB", "GRDBSQLite", "Foundation", "Synchronization"],
        "PostgresStore": ["AssistantStore", "Support", "PostgresNIO", "Foundation", "Logging", "Synchronization"],
        "ClusterServer": ["TelegramFrontEnd", "TelegramBotAPI", "AssistantStore", "Support", "HTTPTypes", "Hummingbird", "Logging", "Metrics", "Prometheus", "ServiceLifecycle"],
        "Conversation": ["OpenAIClient", "AssistantStore", "Support", "Foundation", "Logging", "Synchronization"],
        "TelegramFrontEnd": [
            "Conversation", "TelegramBotAPI", "AssistantStore", "Support", "Foundation", "Logging", "ServiceLifecycle", "UnixSignals",
            "Synchronization",
        ],
        "TerminalFrontEnd": ["Conversation", "Foundation", "Logging", "ServiceLifecycle"],
    ]

    static var sources: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
    }

    /// `import X` lines of every Swift file of a module.
    static func imports(of module: String) throws -> [(file: String, module: String)] {
        let directory = sources.appendingPathComponent(module)
        let files = try #require(FileManager.default.enumerator(atPath: directory.path)).compactMap { $0 as? String }
        return try files.filter { $0.hasSuffix(".swift") }.flatMap { file in
            try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8).split(separator: "\n")
                .compactMap { line -> (String, String)? in
                    let words = line.split(separator: " ")
                    guard let index = words.firstIndex(of: "import"), index + 1 < words.count,
                        words[..<index].allSatisfy({ $0.hasPrefix("@") })
                    else { return nil }
                    return (file, String(words[index + 1]))
                }
        }
    }

    @Test(arguments: allowed.keys.sorted())
    func aModuleImportsOnlyWhatItsLayerAllows(module: String) throws {
        let imports = try Self.imports(of: module)
        #expect(!imports.isEmpty, "no sources found for \(module)")
        for (file, imported) in imports {
            #expect(Self.allowed[module]?.contains(imported) == true, "\(module)/\(file) imports \(imported)")
        }
    }

    /// The store knows neither wire protocol, and the two protocol modules do not know each other.
    @Test func storageAndTheTwoProtocolsStayApart() {
        #expect(Self.allowed["AssistantStore"]?.isDisjoint(with: ["OpenAIClient", "TelegramBotAPI", "CurlHTTP"]) == true)
        #expect(Self.allowed["PostgresStore"]?.isDisjoint(with: ["OpenAIClient", "TelegramBotAPI", "CurlHTTP", "GRDB"]) == true)
        #expect(Self.allowed["OpenAIClient"]?.contains("TelegramBotAPI") == false)
        #expect(Self.allowed["TelegramBotAPI"]?.contains("OpenAIClient") == false)
        #expect(Set(Self.allowed.keys).union(["CCurl", "TelegramAssistant"]) == Self.ours)
    }
}
