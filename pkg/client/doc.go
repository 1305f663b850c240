// Package client talks to one or several teos towers over their public HTTP API
// (docs/PROTOCOL.md §2–5): register, add appointments, get an appointment, get subscription info.
//
// A Tower is created with the tower's id (its public key), learnt out of band, for example
// from the line teosd prints at start-up. Every receipt the tower returns is checked against
// that id; a receipt that does not verify marks the tower as misbehaving (see Misbehaving)
// and is returned as an error wrapping ErrMisbehaving, never dropped.
//
// Discover can learn the id from the tower's GET /info instead, but only when the caller
// asks for it: an id obtained from the tower it is meant to authenticate proves nothing about
// who runs it (trust on first use), so receipt checks then only catch a tower that changes
// its key afterwards.
//
// Transient failures (transport errors, HTTP 503, and a reverse proxy's 502, 504, 429 and 408) are retried with exponential backoff and
// jitter; every other answer, in particular a 4xx, is returned at once as an *APIError.
// Deadlines and cancellation come from the context passed to each call. An HTTP client's
// Timeout (WithHTTPClient) bounds each request, except the two whose size has no fixed bound,
// get_subscription_info and a streamed Upload: for them it bounds each silence (nothing sent
// or received), so that a big one over a slow link is not cut on every try, and the whole to
// the timeout plus the time its bytes take at 8 KiB/s (teosd's own floor for request bodies),
// so that a tower cannot hold the client forever by trickling.
//
// Answers are read up to 8 MiB, except get_subscription_info's, which lists every locator of
// the user: it is decoded as it streams in, bounded by WithMaxLocators (DefaultMaxLocators,
// all a teos-go tower sends); past a bound a call fails with ErrResponseTooLarge.
//
// SendMany sends many appointments to many towers with bounded concurrency and one result
// per (tower, appointment). It uses the tower's "add_appointments" batch extension when
// GET /info advertises it and falls back to one request per appointment otherwise.
package client
