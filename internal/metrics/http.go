package metrics

import (
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/teos-go/teos/pkg/teos"
)

// endpoints are the public API's routes; any other path is counted as endpointOther, so a
// scanner probing random paths cannot grow the label set.
var endpoints = []string{
	"register", "add_appointment", "get_appointment", "get_subscription_info", "ping",
	"add_appointments", "info", // teos-go extensions
	endpointOther,
}

const endpointOther = "other"

// errorCodes are the error_code values httpapi sends (pkg/teos); others count as "other".
var errorCodes = []int{
	teos.ErrCodeMissingField, teos.ErrCodeEmptyField, teos.ErrCodeWrongFieldType,
	teos.ErrCodeWrongFieldSize, teos.ErrCodeWrongFieldFormat, teos.ErrCodeInvalidRequestFormat,
	teos.ErrCodeInvalidSignatureOrSubscriptionError, teos.ErrCodeServiceUnavailable,
	teos.ErrCodeAppointmentFieldTooSmall, teos.ErrCodeAppointmentFieldTooBig,
	teos.ErrCodeAppointmentAlreadyTriggered, teos.ErrCodeAppointmentNotFound,
	teos.ErrCodeRegistrationResourceExhausted, teos.ErrCodeUnexpectedError,
	teos.ErrCodeTooManyRequests,
}

// maxErrorBody bounds what the middleware keeps of an error reply to find its error_code;
// httpapi's error bodies are far shorter.
const maxErrorBody = 1024

// Instrument wraps the public API handler: it counts each request by endpoint, HTTP status
// and error_code, and times it by endpoint. error_code matters because rust-teos answers an
// internal failure (255) with the same 400 as a malformed request.
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		ep := endpointOf(r)
		status := rec.status
		if status == 0 { // nothing written: net/http answers 200
			status = http.StatusOK
		}
		m.requests.WithLabelValues(ep, strconv.Itoa(status), rec.errorCode()).Inc()
		m.requestSeconds.WithLabelValues(ep).Observe(time.Since(start).Seconds())
	})
}

// endpointOf names the route as httpapi does: the first path segment.
func endpointOf(r *http.Request) string {
	path, ok := strings.CutPrefix(r.URL.EscapedPath(), "/")
	if !ok {
		return endpointOther
	}
	segment, _, _ := strings.Cut(path, "/")
	if !slices.Contains(endpoints, segment) {
		return endpointOther
	}
	return segment
}

// recorder notes the status and the start of an error reply on their way to the client.
type recorder struct {
	http.ResponseWriter
	status int
	head   []byte
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
	if rec.status >= 400 && len(rec.head) < maxErrorBody {
		rec.head = append(rec.head, b[:min(len(b), maxErrorBody-len(rec.head))]...)
	}
	return rec.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// errorCode is the label for the reply's error_code: "" for a success or a reply without
// one (warp-style plain text rejections), "other" for a code teos does not define.
func (rec *recorder) errorCode() string {
	if rec.status < 400 || len(rec.head) == 0 {
		return ""
	}
	if ct, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || ct != "application/json" {
		return ""
	}
	var body struct {
		Code *int `json:"error_code"`
	}
	if err := json.Unmarshal(rec.head, &body); err != nil || body.Code == nil {
		return ""
	}
	if !slices.Contains(errorCodes, *body.Code) {
		return "other"
	}
	return strconv.Itoa(*body.Code)
}
