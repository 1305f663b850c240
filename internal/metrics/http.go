package metrics

import (
	"strconv"
	"time"
)

// HTTPRequest is one answered public API request, as the HTTP layer's route table and
// error writer saw it (cmd/teosd adapts httpapi's Exchange to it, so this package imports
// no transport).
type HTTPRequest struct {
	// Endpoint is a route's name or "other"; the HTTP layer bounds the set.
	Endpoint string
	// Status is the HTTP status sent (499 when the client left first, 444 when the stopping tower closed the connection unanswered).
	Status int
	// ErrorCode is the teos error_code sent, 0 when the reply had none.
	ErrorCode int
	// Held is how long the request waited for the rate limit.
	Held time.Duration
	// Duration is the whole request's time.
	Duration time.Duration
}

// ObserveHTTP counts r by endpoint, HTTP status and error_code, and times it by endpoint.
// error_code matters because rust-teos answers an internal failure (255) with the same 400
// as a malformed request.
func (m *Metrics) ObserveHTTP(r HTTPRequest) {
	code := ""
	if r.ErrorCode != 0 {
		code = strconv.Itoa(r.ErrorCode)
	}
	m.requests.WithLabelValues(r.Endpoint, strconv.Itoa(r.Status), code).Inc()
	m.requestSeconds.WithLabelValues(r.Endpoint).Observe(r.Duration.Seconds())
	if r.Held > 0 {
		m.heldSeconds.WithLabelValues(r.Endpoint).Observe(r.Held.Seconds())
	}
}
