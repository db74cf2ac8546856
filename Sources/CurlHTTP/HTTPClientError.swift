import CCurl

/// A transfer that failed below HTTP. It never holds the URL (a Bot API URL holds the token): only
/// what went wrong and libcurl's code.
public struct HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The URL is not a valid http(s) URL.
        case invalidURL
        /// The host name did not resolve (nothing was sent).
        case cannotResolve
        /// No connection could be made, or not in time (nothing was sent).
        case cannotConnect
        /// Connected, but no byte came for the idle limit or the whole transfer ran past its limit.
        case timedOut
        /// The TLS handshake failed or the server's certificate was not trusted.
        case tls
        /// The connection broke after the request went out: the server may have acted on it.
        case connectionLost
        /// More than the allowed number of redirects.
        case tooManyRedirects
        /// A body longer than the caller accepts.
        case bodyTooLarge
        /// Anything else libcurl reports.
        case other
    }

    public let kind: Kind
    /// libcurl's `CURLcode`, 0 when the failure is ours.
    public let code: Int

    public init(_ kind: Kind, code: Int = 0) {
        self.kind = kind
        self.code = code
    }

    /// Maps a libcurl result. `connected` says whether the transfer ever had a connection, which
    /// decides whether a timeout means "nothing was sent".
    init(curl code: CURLcode, connected: Bool) {
        let kind: Kind
        switch code {
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT: kind = .invalidURL
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .cannotResolve
        case CURLE_COULDNT_CONNECT: kind = .cannotConnect
        case CURLE_OPERATION_TIMEDOUT: kind = connected ? .timedOut : .cannotConnect
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            kind = .tls
        case CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_PARTIAL_FILE, CURLE_HTTP2,
            CURLE_HTTP2_STREAM, CURLE_WEIRD_SERVER_REPLY:
            kind = .connectionLost
        case CURLE_TOO_MANY_REDIRECTS: kind = .tooManyRedirects
        default: kind = .other
        }
        self.init(kind, code: Int(code.rawValue))
    }

    public var description: String {
        code == 0 ? "HTTP \(kind.rawValue)" : "HTTP \(kind.rawValue) (libcurl \(code))"
    }
}
