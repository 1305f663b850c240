package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/teos-go/teos/internal/api/clientaddr"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// EndpointOther names every request no route takes (405), so made-up paths add no label
// or bucket of their own.
const EndpointOther = "other"

// StatusClientClosedRequest is the Exchange.Status of a request whose client went away
// before it was answered (nginx's 499); nothing is sent.
const StatusClientClosedRequest = 499

// StatusNoResponse is the Exchange.Status of a request (not an add) whose connection the tower
// closed without an answer because it is stopping (Config.Stopping; nginx's 444).
const StatusNoResponse = 444

// Config is the public API handler's configuration.
type Config struct {
	Client teosv2.PublicTowerServicesClient
	// Ext serves teos-go's extension routes; nil leaves them out (405, as in rust-teos).
	Ext teosv2.PublicTowerExtensionsClient
	// Logger; nil discards.
	Logger *slog.Logger
	// Proxies names the client of each request (for the gate, logs and Observer); the
	// zero value trusts no proxy, so the client is the TCP peer.
	Proxies clientaddr.Proxies
	// InFlight, if set, caps the requests in flight per client (those a trusted proxy
	// forwarded: the connection caps cannot tell them apart); see InFlightLimiter.
	InFlight InFlightLimiter
	// Gate, if set, admits each routed request once its body is read; see Gate.
	Gate Gate
	// Observer, if set, is told about every request once it is answered.
	Observer Observer
	// Registrations, if set, limits successful registrations per client.
	Registrations *RegistrationLimit
	// Stopping, if set, reports whether the tower is shutting down. An add (/add_appointment,
	// /add_appointments) the core or the internal hop then answers Unavailable (or Canceled:
	// the hop closed) is answered 503 with error_code 7 (MsgStopping): the CLN plugin keeps an
	// appointment answered 7 pending both on its first send and in its retrier (which
	// re-registers, then sends it again), while it files 503 / 32 as invalid for good and, on
	// the first send, loses one whose connection was cut. Any other request is cut: nothing is
	// lost by that.
	Stopping func() bool
	// HoldBound is the longest the core may hold one call through a fault (api_hold_timeout).
	HoldBound time.Duration
}

// Admission is what a Gate learns about a request.
type Admission struct {
	Client   clientaddr.Client
	Endpoint string // a route's name
	Size     int    // body bytes held while the request waits
}

// Gate delays requests (the rate limit). Admit returns once r may be served, with how long
// it waited, or an error when it will not be served: the client then gets 503 / 32
// "Service currently unavailable", which is what rust-teos answers for a passing fault of
// the tower's own. ctx ends when the client goes away. Routes marked unlimited (/ping)
// never reach the gate.
type Gate interface {
	Admit(ctx context.Context, a Admission) (waited time.Duration, err error)
}

// InFlightLimiter counts the requests in flight per client. Acquire is called once a
// request is routed, before its body is read; when ok is false the client gets 503 / 32
// at once. release is called when the request is answered. Unlimited routes (/ping) are
// not counted.
type InFlightLimiter interface {
	Acquire(c clientaddr.Client) (release func(), ok bool)
}

// Exchange is one answered request, as the route table and the error writer saw it.
type Exchange struct {
	Endpoint  string // a route's name, or EndpointOther
	Client    clientaddr.Client
	Status    int           // HTTP status sent, or StatusClientClosedRequest
	ErrorCode int           // the teos error_code sent, 0 when the reply has none
	Held      time.Duration // time spent waiting in the Gate
	Refused   bool          // the Gate refused it (503 / 32)
	Duration  time.Duration // from routing to the end of the reply
}

// Observer learns about every request (metrics). Observe runs on the request's goroutine
// after the reply is written, so it must be quick.
type Observer interface {
	Observe(Exchange)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Exchange)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Exchange) { f(e) }

// Refusals, for writeUnavailable's log line.
var (
	errGateRefused     = errors.New("request refused by the gate")
	errTooManyInFlight = errors.New("too many requests in flight from this client")
)

// recorder notes the status and error_code of the reply on their way to the client.
type recorder struct {
	http.ResponseWriter
	status    int
	errorCode int
}

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 && status >= 200 { // 1xx are interim
		rec.status = status
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flushes, deadlines).
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// noteClientGone records on w, if it is the handler's recorder, that nothing was sent
// because the client went away.
func noteClientGone(w http.ResponseWriter) {
	if rec, ok := w.(*recorder); ok && rec.status == 0 {
		rec.status = StatusClientClosedRequest
	}
}

// noteErrorCode records code on w if w is the handler's recorder.
func noteErrorCode(w http.ResponseWriter, code int) {
	if rec, ok := w.(*recorder); ok {
		rec.errorCode = code
	}
}
