import Foundation
import Support
import TelegramFrontEnd

extension TelegramConfig {
    /// Validates the Telegram variables, adding what is wrong to `problems`.
    static func parse(_ value: (String) -> String?, allowInsecureHTTP: Bool, problems: inout [String]) -> TelegramConfig {
        let token = value("TELEGRAM_BOT_TOKEN") ?? ""
        if token.isEmpty {
            problems.append("TELEGRAM_BOT_TOKEN is required (create a bot with @BotFather and paste its token)")
        } else if !Self.looksLikeToken(token) {
            problems.append("TELEGRAM_BOT_TOKEN does not look like a bot token (expected digits, a colon, then the secret part)")
        }
        var apiURL = URL(string: "https://api.telegram.org")!
        if let text = value("TELEGRAM_API_URL"),
            let url = AssistantConfig.endpoint("TELEGRAM_API_URL", text, allowInsecureHTTP: allowInsecureHTTP, problems: &problems)
        {
            apiURL = url
        }
        func ids(_ name: String) -> Set<Int64> {
            guard let text = value(name) else { return [] }
            var result: Set<Int64> = []
            for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
                if let id = Int64(part) {
                    result.insert(id)
                } else {
                    problems.append("\(name) must be comma-separated numeric Telegram user ids, got \"\(part)\"")
                }
            }
            return result
        }
        func integer(_ name: String, default fallback: Int, in range: ClosedRange<Int>) -> Int {
            guard let text = value(name) else { return fallback }
            guard let number = Int(text), range.contains(number) else {
                problems.append("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound), got \"\(text)\"")
                return fallback
            }
            return number
        }
        return TelegramConfig(
            token: Secret(token), apiURL: apiURL, allowedUserIDs: ids("ALLOWED_USER_IDS"), adminUserIDs: ids("ADMIN_USER_IDS"),
            allowedModels: (value("ALLOWED_MODELS") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty },
            userRateLimitPerMinute: integer("USER_RATE_LIMIT_PER_MINUTE", default: 10, in: 1...10_000),
            maxConcurrentReplies: integer("MAX_CONCURRENT_REPLIES", default: 32, in: 1...10_000),
            pollTimeout: integer("TELEGRAM_POLL_TIMEOUT", default: 50, in: 1...50),
            shutdownGrace: .seconds(integer("SHUTDOWN_GRACE_SECONDS", default: 20, in: 0...3600)))
    }

    static func looksLikeToken(_ token: String) -> Bool {
        let parts = token.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].allSatisfy(\.isNumber) else { return false }
        return parts[1].count >= 20 && parts[1].allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
    }
}
