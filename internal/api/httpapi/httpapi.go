// Package httpapi is the tower's public HTTP/JSON API (teos v0.2). It checks each request
// with the inspector, forwards it to the internal PublicTowerServices gRPC service and turns
// the answer, or the gRPC status, into the JSON rust-teos clients expect. routes.go holds
// the one route table; the rate limit and the metrics learn each request's endpoint, status
// and error code from it through Config's Gate and Observer.
package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/inspector"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// warp's plain-text rejection bodies; clients only look at the status.
const (
	textMethodNotAllowed     = "HTTP method not allowed"
	textLengthRequired       = "A content-length header is required"
	textPayloadTooLarge      = "The request payload is too large"
	textUnsupportedMediaType = "The request's content-type is not supported"
	textBodyReadError        = "Request body read error"
)

// msgUnavailable is rust-teos's text for 503 / 32.
const msgUnavailable = "Service currently unavailable"

type handler struct {
	client teosv2.PublicTowerServicesClient
	ext    teosv2.PublicTowerExtensionsClient // nil: no extension routes
	logger *slog.Logger
	cfg    Config
	routes []route // the table, minus extensions when ext is nil
}

// New returns the public API handler. Every POST endpoint is forwarded to client with the
// request's context. A nil logger discards.
func New(client teosv2.PublicTowerServicesClient, logger *slog.Logger) http.Handler {
	return NewHandler(Config{Client: client, Logger: logger})
}

// NewWithExtensions is New plus teos-go's extensions, forwarded to ext: POST
// /add_appointments and GET /info. With a nil ext it is New.
func NewWithExtensions(client teosv2.PublicTowerServicesClient, ext teosv2.PublicTowerExtensionsClient, logger *slog.Logger) http.Handler {
	return NewHandler(Config{Client: client, Ext: ext, Logger: logger})
}

// NewHandler returns the public API handler for cfg.
func NewHandler(cfg Config) http.Handler {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{client: cfg.Client, ext: cfg.Ext, logger: logger.With("component", "httpapi"), cfg: cfg}
	for _, rt := range routes {
		if !rt.extension || cfg.Ext != nil {
			h.routes = append(h.routes, rt)
		}
	}
	return h
}

// ServeHTTP routes as rust-teos's warp filters do. Each route matches on its first path
// segment only. A request no route takes gets 405, never 404: some route always fails on
// the method, and warp ranks that rejection above "not found". A routed request's body is
// read (and checked against the route's limits) before the Gate sees it, so a client
// that goes away while held is noticed and frees its place.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt, endpoint := h.route(r)
	ex := Exchange{Endpoint: endpoint, Client: h.cfg.Proxies.Client(r)}
	rec := &recorder{ResponseWriter: w}
	if h.cfg.Observer != nil {
		defer func() {
			ex.Status, ex.ErrorCode, ex.Duration = rec.status, rec.errorCode, time.Since(start)
			if ex.Status == 0 { // nothing written: net/http answers 200
				ex.Status = http.StatusOK
			}
			h.cfg.Observer.Observe(ex)
		}()
	}
	if h.logger.Enabled(r.Context(), slog.LevelDebug) { // the client's text costs an allocation
		h.logger.Debug("request", "method", r.Method, "endpoint", endpoint, "client", ex.Client.String())
	}
	if rt == nil {
		h.writeText(rec, http.StatusMethodNotAllowed, textMethodNotAllowed)
		return
	}
	if h.cfg.InFlight != nil && !rt.unlimited {
		release, ok := h.cfg.InFlight.Acquire(ex.Client)
		if !ok {
			ex.Refused = true
			h.writeUnavailable(rec, r, errors.Join(errGateRefused, errTooManyInFlight))
			return
		}
		defer release()
	}
	var body []byte
	if rt.method == http.MethodPost {
		var status int
		var text string
		if body, status, text = readBody(rec, r, rt.bodyLimit); status != 0 {
			h.writeText(rec, status, text)
			return
		}
	}
	if h.cfg.Gate != nil && !rt.unlimited {
		waited, err := h.cfg.Gate.Admit(r.Context(), Admission{Client: ex.Client, Endpoint: endpoint, Size: len(body)})
		ex.Held = waited
		if err != nil && r.Context().Err() != nil {
			// The client went away while held: no one to answer.
			h.logger.Debug("client left while held", "endpoint", endpoint, "client", ex.Client.String())
			rec.status = StatusClientClosedRequest
			return
		}
		if err != nil {
			ex.Refused = true
			h.writeUnavailable(rec, r, errors.Join(errGateRefused, err))
			return
		}
	}
	if rt.name == "register" && h.cfg.Registrations != nil {
		addr := ex.Client.Key() // an IPv6 /64 is one client; "onion": every onion client shares one budget (docs/EXTENSIONS.md)
		if !h.cfg.Registrations.take(addr) {
			h.writeError(rec, http.StatusBadRequest, ErrorBody{Message: MsgRegistrationRate, Code: teos.ErrCodeRegistrationResourceExhausted})
			return
		}
		defer func() {
			if rec.status != http.StatusOK { // nothing was granted
				h.cfg.Registrations.giveBack(addr)
			}
		}()
	}
	rt.serve(h, rec, r, body)
}

// truncate bounds what the client sent before it reaches a log line.
func truncate(s string) string {
	const maxLogged = 32
	if len(s) > maxLogged {
		return s[:maxLogged] + "..."
	}
	return s
}

// readBody applies warp's content_length_limit and json filters in their order: the
// Content-Length header must be present (411) and within the limit (413) before anything
// is read, and a Content-Type, if present, must be application/json (415). On failure it
// returns the status and text to answer with.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int, string) {
	length, ok := contentLength(r)
	if !ok {
		return nil, http.StatusLengthRequired, textLengthRequired
	}
	if length > uint64(limit) {
		return nil, http.StatusRequestEntityTooLarge, textPayloadTooLarge
	}
	if ct, ok := r.Header["Content-Type"]; ok && (len(ct) == 0 || !isJSON(ct[0])) {
		return nil, http.StatusUnsupportedMediaType, textUnsupportedMediaType
	}
	// net/http already stops at Content-Length; the cap also covers bodies handed in by
	// other means (wrappers, tests) whatever the header claims.
	src := r.Body
	if src == nil { // only in-process callers can send no body at all
		src = http.NoBody
	}
	body, err := readAll(http.MaxBytesReader(w, src, limit), length)
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			return nil, http.StatusRequestEntityTooLarge, textPayloadTooLarge
		}
		return nil, http.StatusBadRequest, textBodyReadError
	}
	return body, 0, ""
}

// readAll is io.ReadAll with the buffer sized from the Content-Length already checked against
// the route's limit: one allocation instead of io.ReadAll's doubling from 512 bytes. The extra
// byte lets the read that meets the end need no growth. Past maxPrealloc the buffer grows with
// what arrives: a client that announces a large body and sends nothing must not get it reserved.
func readAll(src io.Reader, length uint64) ([]byte, error) {
	const maxPrealloc = 16 << 10
	buf := make([]byte, 0, min(length, maxPrealloc)+1)
	for {
		if len(buf) == cap(buf) { // more than announced (in-process callers): grow as io.ReadAll does
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// contentLength reads the Content-Length header. net/http drops it for chunked bodies, so
// those count as missing, as in warp. Requests built in-process (httptest.NewRequest) may
// carry only r.ContentLength, which is then trusted.
func contentLength(r *http.Request) (uint64, bool) {
	if v, ok := r.Header["Content-Length"]; ok && len(v) > 0 {
		n, err := strconv.ParseUint(strings.TrimSpace(v[0]), 10, 64)
		return n, err == nil // warp treats an unparsable value as missing
	}
	if r.ContentLength > 0 {
		return uint64(r.ContentLength), true
	}
	return 0, false
}

// isJSON reports whether warp's json filter takes contentType as JSON: application/json in
// any case, with parameters as the mime crate parses them (mediatype.go).
func isJSON(contentType string) bool {
	if asciiEqualFold(contentType, "application/json") { // what clients send; no parsing
		return true
	}
	return warpJSON(contentType)
}

// asciiEqualFold is strings.EqualFold for ASCII only: EqualFold also folds U+017F (ſ) to 's'
// and U+212A (Kelvin) to 'k', which warp refuses (not visible ASCII).
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

func (h *handler) register(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := inspector.InspectRegister(body)
	if err != nil {
		h.writeRejection(w, r, err)
		return
	}
	resp, err := h.client.Register(r.Context(), &commonv2.RegisterRequest{UserId: req.UserID[:]})
	if err != nil {
		h.writeStatus(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, newRegisterReply(resp))
}

func (h *handler) addAppointment(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := inspector.InspectAddAppointment(body)
	if err != nil {
		h.writeRejection(w, r, err)
		return
	}
	resp, err := h.client.AddAppointment(r.Context(), &commonv2.AddAppointmentRequest{
		Appointment: &commonv2.Appointment{
			Locator:       req.Appointment.Locator[:],
			EncryptedBlob: req.Appointment.EncryptedBlob,
			ToSelfDelay:   req.Appointment.ToSelfDelay,
		},
		Signature: req.Signature,
	})
	if err != nil {
		h.writeStatus(w, r, err)
		return
	}
	h.writeReceipt(w, resp)
}

func (h *handler) getAppointment(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := inspector.InspectGetAppointment(body)
	if err != nil {
		h.writeRejection(w, r, err)
		return
	}
	resp, err := h.client.GetAppointment(r.Context(), &commonv2.GetAppointmentRequest{
		Locator:   req.Locator[:],
		Signature: req.Signature,
	})
	if err != nil {
		h.writeStatus(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, newGetAppointmentReply(resp))
}

func (h *handler) getSubscriptionInfo(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := inspector.InspectGetSubscriptionInfo(body)
	if err != nil {
		h.writeRejection(w, r, err)
		return
	}
	resp, err := h.client.GetSubscriptionInfo(r.Context(), &commonv2.GetSubscriptionInfoRequest{
		Signature: req.Signature,
	})
	if err != nil {
		h.writeStatus(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, newSubscriptionInfoReply(resp))
}

// writeRejection answers a request the inspector refused: always 400.
func (h *handler) writeRejection(w http.ResponseWriter, r *http.Request, err error) {
	body := rejectionBody(err)
	h.logger.Debug("request rejected", "endpoint", truncate(firstSegment(r.URL.EscapedPath())), "error_code", body.Code)
	h.writeError(w, http.StatusBadRequest, body)
}

// writeStatus answers a request the core refused or could not be asked. Code 255 means
// something the tower did not expect, so the operator sees it.
func (h *handler) writeStatus(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away (while the core held its request): no one to answer, and no
		// unexpected error of the tower's.
		h.logger.Debug("client left before the answer", "endpoint", truncate(firstSegment(r.URL.EscapedPath())), "err", err)
		noteClientGone(w)
		return
	}
	if body, ok := damagedAnswer(r, err); ok {
		h.logger.Warn("add not served: the tower's database is damaged", "endpoint", truncate(firstSegment(r.URL.EscapedPath())))
		h.writeError(w, http.StatusServiceUnavailable, body)
		return
	}
	if body, ok := h.stoppingAnswer(r, err); ok {
		h.logger.Debug("tower stopping: add answered to be sent again", "endpoint", truncate(firstSegment(r.URL.EscapedPath())), "err", err)
		h.writeError(w, http.StatusServiceUnavailable, body)
		return
	}
	status, body := StatusToHTTP(err)
	if notServed(err) && h.stopping() {
		// Not served because the tower is stopping, and not an add: nothing is lost by a cut,
		// which no client takes for a refusal (Config.Stopping).
		h.logger.Debug("tower stopping: connection closed without an answer", "endpoint", truncate(firstSegment(r.URL.EscapedPath())), "err", err)
		if rec, ok := w.(*recorder); ok && rec.status == 0 {
			rec.status = StatusNoResponse
		}
		panic(http.ErrAbortHandler) // net/http closes the connection, logging nothing
	}
	level := slog.LevelDebug
	if body.Code == teos.ErrCodeUnexpectedError {
		level = slog.LevelWarn
	}
	h.logger.Log(r.Context(), level, "request failed", "endpoint", truncate(firstSegment(r.URL.EscapedPath())),
		"error_code", body.Code, "err", err)
	h.writeError(w, status, body)
}

// MsgStopping is the message of the answer to an add the tower did not serve because it is
// stopping (Config.Stopping).
const MsgStopping = msgUnavailable + ": the tower is stopping, send again later"

func (h *handler) stopping() bool { return h.cfg.Stopping != nil && h.cfg.Stopping() }

// stoppingAnswer is the body for an add (/add_appointment, /add_appointments) that err says was
// not served because the tower is stopping: error_code 7, the one answer the CLN plugin keeps
// pending both on its first send and in its retrier. It files any other code as invalid for
// good, and loses on the first send an appointment whose connection was cut.
func (h *handler) stoppingAnswer(r *http.Request, err error) (ErrorBody, bool) {
	if !isAdd(r) {
		return ErrorBody{}, false
	}
	if !notServed(err) || !h.stopping() {
		return ErrorBody{}, false
	}
	return ErrorBody{Message: MsgStopping, Code: teos.ErrCodeInvalidSignatureOrSubscriptionError}, true
}

// isAdd reports whether r is an add (/add_appointment, /add_appointments): the requests whose
// unserved answers the CLN plugin must keep pending.
func isAdd(r *http.Request) bool {
	switch firstSegment(r.URL.EscapedPath()) {
	case "add_appointment", "add_appointments":
		return true
	}
	return false
}

// damagedAnswer is the body for an add the core could not serve because it reached a damaged
// page of the database (DataLoss, grpcapi.MsgDamaged): error_code 7 like the stopping answer,
// so the CLN plugin keeps the appointment pending rather than filing it invalid.
func damagedAnswer(r *http.Request, err error) (ErrorBody, bool) {
	if !isAdd(r) {
		return ErrorBody{}, false
	}
	st, ok := grpcstatus.FromError(err)
	if !ok || st.Code() != codes.DataLoss {
		return ErrorBody{}, false
	}
	return ErrorBody{Message: st.Message(), Code: teos.ErrCodeInvalidSignatureOrSubscriptionError}, true
}

// notServed reports whether err says the core did not serve the request, rather than answer
// it: Unavailable (a fault past the hold, the hop's transport), or Canceled while the client is
// still there (grpc-go's "the client connection is closing": teosd closed the hop).
func notServed(err error) bool {
	switch grpcstatus.Code(err) {
	case codes.Unavailable, codes.Canceled:
		return true
	}
	return false
}

// writeUnavailable answers 503 / 32 for a passing condition of the tower's own.
func (h *handler) writeUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	h.logger.Debug("request not served", "endpoint", truncate(firstSegment(r.URL.EscapedPath())), "err", err)
	h.writeError(w, http.StatusServiceUnavailable, ErrorBody{Message: msgUnavailable, Code: teos.ErrCodeServiceUnavailable})
}

// writeError is the one place an {"error", "error_code"} reply is written, so the
// Observer learns its code.
func (h *handler) writeError(w http.ResponseWriter, status int, body ErrorBody) {
	noteErrorCode(w, body.Code)
	h.writeJSON(w, status, body)
}

// writeJSON writes v compactly, without the HTML escaping encoding/json does by default:
// the bytes then match serde_json's output.
func (h *handler) writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Unreachable: the reply types hold only strings and numbers.
		h.logger.Error("encode reply", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func (h *handler) writeText(w http.ResponseWriter, status int, text string) {
	h.logger.Debug("request refused", "status", status)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}
