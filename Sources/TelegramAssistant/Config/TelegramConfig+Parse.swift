import Foundation
import Support
import TelegramFrontEnd

extension TelegramConfig {
    /// Reads the Telegram variables, adding what is wrong to the problems.
    static func parse(_ values: inout ConfigValues, allowInsecureHTTP: Bool) -> TelegramConfig {
        let token = values.text("TELEGRAM_BOT_TOKEN") ?? ""
        if token.isEmpty {
            values.problem("TELEGRAM_BOT_TOKEN is required (create a bot with @BotFather and paste its token)")
        } else if !Self.looksLikeToken(token) {
            values.problem("TELEGRAM_BOT_TOKEN does not look like a bot token (expected digits, a colon, then the secret part)")
        }
        var apiURL = URL(string: "https://api.telegram.org")!
        if let text = values.text("TELEGRAM_API_URL"),
            let url = AssistantConfig.endpoint("TELEGRAM_API_URL", text, allowInsecureHTTP: allowInsecureHTTP, values: &values)
        {
            apiURL = url
        }
        var config = TelegramConfig(
            token: Secret(token), apiURL: apiURL, allowedUserIDs: values.ids("ALLOWED_USER_IDS"), adminUserIDs: values.ids("ADMIN_USER_IDS"),
            allowedModels: values.list("ALLOWED_MODELS"),
            userRateLimitPerMinute: values.integer("USER_RATE_LIMIT_PER_MINUTE", default: 10, in: 1...10_000),
            maxConcurrentReplies: values.integer("MAX_CONCURRENT_REPLIES", default: 32, in: 1...10_000),
            pollTimeout: values.integer("TELEGRAM_POLL_TIMEOUT", default: 50, in: 1...50),
            shutdownGrace: .seconds(values.integer("SHUTDOWN_GRACE_SECONDS", default: 20, in: 0...3600)),
            maxTextFileBytes: values.integer("TEXT_FILE_MAX_KB", default: 100, in: 1...20_480) * 1024)
        config.webhook = webhook(&values, allowInsecureHTTP: allowInsecureHTTP)
        return config
    }

    /// `TELEGRAM_WEBHOOK_URL` with its secret and limits; webhook mode needs the Cluster build.
    static func webhook(_ values: inout ConfigValues, allowInsecureHTTP: Bool) -> TelegramConfig.Webhook? {
        let maxConnections = values.integer("WEBHOOK_MAX_CONNECTIONS", default: 40, in: 1...100)
        guard let text = values.text("TELEGRAM_WEBHOOK_URL") else {
            for name in ["WEBHOOK_LISTEN", "TELEGRAM_WEBHOOK_SECRET"] where values.text(name) != nil {
                values.problem("\(name) is set but TELEGRAM_WEBHOOK_URL is not: set the public URL for webhook mode, or unset \(name) to poll")
            }
            return nil
        }
        #if !Cluster
            values.problem("TELEGRAM_WEBHOOK_URL needs the Cluster build: build with `swift build -c release --traits Cluster`, or unset it to poll")
        #endif
        let url = AssistantConfig.endpoint("TELEGRAM_WEBHOOK_URL", text, allowInsecureHTTP: allowInsecureHTTP, values: &values)
        if values.text("WEBHOOK_LISTEN") == nil {
            values.problem("TELEGRAM_WEBHOOK_URL needs WEBHOOK_LISTEN, the HOST:PORT this bot listens on behind your HTTPS proxy (e.g. 127.0.0.1:8443)")
        }
        let secret = values.text("TELEGRAM_WEBHOOK_SECRET") ?? ""
        if secret.isEmpty {
            values.problem("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET, which Telegram sends with every update (make one: openssl rand -hex 32)")
        } else if secret.count > 256 || !secret.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) {
            values.problem("TELEGRAM_WEBHOOK_SECRET must be 1-256 of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        }
        return url.map { TelegramConfig.Webhook(url: $0, secret: Secret(secret), maxConnections: maxConnections) }
    }

    static func looksLikeToken(_ token: String) -> Bool {
        let parts = token.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].allSatisfy(\.isNumber) else { return false }
        return parts[1].count >= 20 && parts[1].allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
    }
}
