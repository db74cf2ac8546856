// CurlHTTP: the HTTP client. libcurl's multi interface on one event thread; streamed bodies
// handed to Swift in batches, with back-pressure, deadlines and cancellation.
//
// Owns: `HTTPClient`, `HTTPRequest`, `HTTPBody`, `HTTPClientError`, the event loop.
// Never imports: anything of ours but CCurl. It knows no API: Telegram and the model are its callers.
