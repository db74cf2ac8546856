// CurlHTTP: the HTTP client. libcurl's multi interface on one event thread; streamed bodies
// handed to Swift in batches, with back-pressure, deadlines and cancellation. The same thread keeps
// the bot's sleeps (`HTTPClient.clock`, an `EventLoopClock`).
//
// Owns: `HTTPClient`, `HTTPRequest`, `HTTPBody`, `HTTPClientError`, the event loop and its clock.
// Never imports: anything of ours but CCurl. It knows no API: Telegram and the model are its callers.
