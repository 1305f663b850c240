package httpapi_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/teos-go/teos/internal/api/httpapi"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

const (
	validID   = "020dea894c967319407265764aba31bdef75d463f96800f34dd6df61380d82dfc0" // VECTORS §4
	badCharID = "022fa2900ed7fc07b4e8ca3ea081e846245b0497944644aa78ea0b994ac22074dZ"
	locator   = "c69517f00d9482e6b1c41639f9bdfd5c"
	locator32 = locator + locator
	sig       = "d9tibmnic9t5y41hg7hkakdcra94akas9ku3rmmj4ag9mritc8ok4p5qzefs78c9pqfhpuftqqzhydbdwfg7u6w6wdxcqpqn4sj4e73e" // TV-S1
	// TV-T1: the txid of rust-teos's TX_HEX in both byte orders.
	txidDisplay  = "3e9d344993b210915c41e693df0bbf48af7a88f2f7011ad4e0264a3c69da8b33"
	txidInternal = "338bda693c4a26e0d41a01f7f2887aaf48bf0bdf93e6415c9110b29349349d3e"
	// TV-T2: the block-170 transaction's txid, display order.
	penaltyDisplay = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
)

var validBodies = map[string]string{
	"/register":              `{"user_id": "` + validID + `"}`,
	"/add_appointment":       `{"appointment": {"locator": "` + locator + `", "encrypted_blob": "00ff", "to_self_delay": 42}, "signature": "` + sig + `"}`,
	"/get_appointment":       `{"locator": "` + locator + `", "signature": "` + sig + `"}`,
	"/get_subscription_info": `{"signature": "` + sig + `"}`,
}

var bodyLimits = map[string]int{
	"/register":              87,
	"/add_appointment":       2048,
	"/get_appointment":       178,
	"/get_subscription_info": 127,
}

func endpoints() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for p := range validBodies {
			if !yield(p) {
				return
			}
		}
	})
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reversed(b []byte) []byte {
	r := slices.Clone(b)
	slices.Reverse(r)
	return r
}

func checkText(t *testing.T, got response, wantStatus int, wantBody string) {
	t.Helper()
	if got.status != wantStatus || got.body != wantBody {
		t.Errorf("got %d %q, want %d %q", got.status, got.body, wantStatus, wantBody)
	}
	if ct := got.header.Get("Content-Type"); got.status != http.StatusOK && ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
}

// checkError asserts a JSON error reply: status, code and message (equal, or contained
// when contains is set). The body must be exactly {"error":...,"error_code":...}.
func checkError(t *testing.T, got response, wantStatus, wantCode int, wantMsg string, contains bool) {
	t.Helper()
	if got.status != wantStatus {
		t.Errorf("status %d, want %d (body %s)", got.status, wantStatus, got.body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct {
		Error     *string `json:"error"`
		ErrorCode *int    `json:"error_code"`
	}
	dec := json.NewDecoder(strings.NewReader(got.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Error == nil || body.ErrorCode == nil {
		t.Fatalf("body %s is not an error body: %v", got.body, err)
	}
	if !strings.HasPrefix(got.body, `{"error":"`) {
		t.Errorf("body %s: want error first", got.body)
	}
	if *body.ErrorCode != wantCode {
		t.Errorf("error_code %d, want %d (%q)", *body.ErrorCode, wantCode, *body.Error)
	}
	if contains && !strings.Contains(*body.Error, wantMsg) || !contains && *body.Error != wantMsg {
		t.Errorf("error %q, want %q (contains=%v)", *body.Error, wantMsg, contains)
	}
}

func TestRouting(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		wantStatus   int
	}{
		// rust-teos tests_failures: unknown path or method is 405, never 404
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/register", http.StatusMethodNotAllowed},
		{http.MethodGet, "/add_appointment", http.StatusMethodNotAllowed},
		{http.MethodGet, "/get_appointment", http.StatusMethodNotAllowed},
		{http.MethodGet, "/get_subscription_info", http.StatusMethodNotAllowed},
		{http.MethodPost, "/ping", http.StatusMethodNotAllowed},
		{http.MethodPut, "/register", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/ping", http.StatusMethodNotAllowed},
		{http.MethodPost, "/unknown", http.StatusMethodNotAllowed},
		{http.MethodPost, "/Register", http.StatusMethodNotAllowed},
		{http.MethodPost, "//register", http.StatusMethodNotAllowed},
		{http.MethodPost, "/regist%65r", http.StatusMethodNotAllowed}, // warp matches the raw path
		// warp::path matches the first segment only
		{http.MethodPost, "/register/extra", http.StatusOK},
		{http.MethodPost, "/register?x=1", http.StatusOK},
		{http.MethodPost, "/register", http.StatusOK},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			fake := newFake()
			srv := newServer(t, fake)
			got := send(t, srv, tc.method, tc.path, validBodies["/register"], "application/json")
			if tc.wantStatus == http.StatusOK {
				if got.status != http.StatusOK || len(fake.Calls()) != 1 {
					t.Fatalf("got %d %s with %d calls, want 200 and one call", got.status, got.body, len(fake.Calls()))
				}
				return
			}
			checkText(t, got, tc.wantStatus, "HTTP method not allowed")
			assertNoCalls(t, fake)
		})
	}
}

func TestHeadPingIsNotAllowed(t *testing.T) {
	srv := newServer(t, newFake())
	if got := send(t, srv, http.MethodHead, "/ping", "", "-"); got.status != http.StatusMethodNotAllowed {
		t.Errorf("HEAD /ping: %d, want 405", got.status)
	}
}

func TestPing(t *testing.T) {
	for _, path := range []string{"/ping", "/ping/extra", "/ping?x=1"} {
		fake := newFake()
		srv := newServer(t, fake)
		got := send(t, srv, http.MethodGet, path, "", "-")
		if got.status != http.StatusOK || got.body != "" {
			t.Errorf("GET %s: %d %q, want 200 and an empty body", path, got.status, got.body)
		}
		if ct := got.header.Get("Content-Type"); ct != "" {
			t.Errorf("GET %s: Content-Type %q, want none", path, ct)
		}
		assertNoCalls(t, fake)
	}
}

// padTo grows a JSON object body to n bytes with spaces before its closing brace.
func padTo(t *testing.T, body string, n int) string {
	t.Helper()
	if len(body) > n {
		t.Fatalf("body of %d bytes is over %d", len(body), n)
	}
	return body[:len(body)-1] + strings.Repeat(" ", n-len(body)) + "}"
}

func TestBodyLimits(t *testing.T) {
	for _, path := range endpoints() {
		limit := bodyLimits[path]
		t.Run(path, func(t *testing.T) {
			fake := newFake()
			srv := newServer(t, fake)

			got := post(t, srv, path, padTo(t, validBodies[path], limit))
			if got.status != http.StatusOK || len(fake.Calls()) != 1 {
				t.Fatalf("body at the limit: %d %s with %d calls, want 200 and one call", got.status, got.body, len(fake.Calls()))
			}

			fake = newFake()
			srv = newServer(t, fake)
			checkText(t, post(t, srv, path, padTo(t, validBodies[path], limit+1)), http.StatusRequestEntityTooLarge, "The request payload is too large")
			// 413 comes before the Content-Type check.
			checkText(t, send(t, srv, http.MethodPost, path, padTo(t, validBodies[path], limit+1), "text/plain"),
				http.StatusRequestEntityTooLarge, "The request payload is too large")
			assertNoCalls(t, fake)
		})
	}
}

func TestPayloadTooLargeRustCase(t *testing.T) {
	// rust-teos test_payload_too_large: a JSON string of two user ids.
	fake := newFake()
	srv := newServer(t, fake)
	checkText(t, post(t, srv, "/register", `"`+validID+validID+`"`), http.StatusRequestEntityTooLarge, "The request payload is too large")
	assertNoCalls(t, fake)
}

func TestLengthRequired(t *testing.T) {
	for name, request := range map[string]string{
		"no body":  "POST /register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"chunked":  "POST /register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\n{}  \r\n0\r\n\r\n",
		"bad type": "POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			fake := newFake()
			srv := newServer(t, fake)
			checkText(t, sendRaw(t, srv, request), http.StatusLengthRequired, "A content-length header is required")
			assertNoCalls(t, fake)
		})
	}
}

func TestUnparsableContentLength(t *testing.T) {
	// net/http rejects such a header on the wire; an in-process caller may still pass one.
	fake := newFake()
	req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(validBodies["/register"]))
	req.Header.Set("Content-Length", "abc")
	rec := httptest.NewRecorder()
	httpapi.New(fake, nil).ServeHTTP(rec, req)
	if rec.Code != http.StatusLengthRequired {
		t.Errorf("got %d, want 411", rec.Code)
	}
	assertNoCalls(t, fake)
}

func TestLyingContentLength(t *testing.T) {
	// The header is under the limit but the body is not: the read is capped anyway.
	fake := newFake()
	body := padTo(t, validBodies["/register"], 300)
	req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(body))
	req.Header.Set("Content-Length", "80")
	rec := httptest.NewRecorder()
	httpapi.New(fake, nil).ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("got %d %s, want 413", rec.Code, rec.Body)
	}
	assertNoCalls(t, fake)
}

func TestInProcessRequestWithoutHeader(t *testing.T) {
	// httptest.NewRequest sets ContentLength but no header; such a request is served.
	fake := newFake()
	req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(validBodies["/register"]))
	rec := httptest.NewRecorder()
	httpapi.New(fake, nil).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || len(fake.Calls()) != 1 {
		t.Errorf("got %d with %d calls, want 200 and one call", rec.Code, len(fake.Calls()))
	}
}

func TestContentType(t *testing.T) {
	for _, tc := range []struct {
		contentType string
		wantStatus  int
	}{
		{"-", http.StatusOK}, // absent: parsed as JSON anyway
		{"application/json", http.StatusOK},
		{"application/json; charset=utf-8", http.StatusOK},
		{"Application/JSON", http.StatusOK},
		{"", http.StatusUnsupportedMediaType},
		{"text/plain", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"application/jsonx", http.StatusUnsupportedMediaType},
		{"application/problem+json", http.StatusUnsupportedMediaType},
		{"not a media type", http.StatusUnsupportedMediaType},
		// As warp's mime parser reads them, not as mime.ParseMediaType (mediatype.go).
		{"application/json;charset=utf-8", http.StatusOK},
		{"application/json+x", http.StatusOK},         // the subtype ends at the suffix
		{"application/json; a=b; a=c", http.StatusOK}, // a repeated parameter
		{"application/json; a=", http.StatusOK},       // an empty value at the end
		{"application/json ;charset=utf-8", http.StatusUnsupportedMediaType},
		{"application/json; charset = utf-8", http.StatusUnsupportedMediaType},
		{"application/json;\tcharset=utf-8", http.StatusUnsupportedMediaType},
		{`application/json; a=""`, http.StatusUnsupportedMediaType},
		{`application/json; a="b\"c"`, http.StatusUnsupportedMediaType},
		{"application/json; a=\"\u00e9\"", http.StatusUnsupportedMediaType}, // not visible ASCII
	} {
		t.Run(tc.contentType, func(t *testing.T) {
			fake := newFake()
			srv := newServer(t, fake)
			got := send(t, srv, http.MethodPost, "/register", validBodies["/register"], tc.contentType)
			if tc.wantStatus == http.StatusOK {
				if got.status != http.StatusOK {
					t.Errorf("got %d %s, want 200", got.status, got.body)
				}
				return
			}
			checkText(t, got, tc.wantStatus, "The request's content-type is not supported")
			assertNoCalls(t, fake)
		})
	}
}

func TestRejectedBodies(t *testing.T) {
	appt := func(loc, blob, delay string) string {
		return `{"locator": "` + loc + `", "encrypted_blob": "` + blob + `", "to_self_delay": ` + delay + `}`
	}
	add := func(appointment, signature string) string {
		return `{"appointment": ` + appointment + `, "signature": "` + signature + `"}`
	}
	for _, tc := range []struct {
		name, path, body string
		wantCode         int
		wantMsg          string
		contains         bool
	}{
		// rust-teos tests_failures and VECTORS §4/§7
		{"empty body", "/register", ``, 6, "EOF while parsing a value at line 1 column 0", false},
		{"json string body", "/register", `""`, 3, "expected struct", true},
		{"empty object", "/register", `{}`, 1, "missing field `user_id`", false},
		{"number user_id", "/register", `{"user_id":1}`, 3, "invalid type", true},
		{"odd hex", "/register", `{"user_id": "a"}`, 5, "Odd number of digits", true},
		{"wrong size", "/register", `{"user_id": "aa"}`, 4, "Wrong `user_id` field size. Expected 33, received 1", false},
		{"empty user_id", "/register", `{"user_id": ""}`, 2, "`user_id` field is empty", false},
		{"bad hex char", "/register", `{"user_id": "` + badCharID + `"}`, 5, "Invalid character 'Z' at position 65", true},
		{"missing appointment (rust test)", "/add_appointment", `{"signature": "aa"}`, 1, "missing field `appointment`", false},
		// docs/PROTOCOL.md 5.3 step 5
		{"null appointment", "/add_appointment", `{"appointment": null, "signature": "aa"}`, 1, "missing field `appointment`", false},
		{"empty locator", "/add_appointment", add(appt("", "", "1"), sig), 2, "`locator` field is empty", false},
		{"locator size", "/add_appointment", add(appt(locator32, "", "1"), sig), 4, "Wrong `locator` field size. Expected 16, received 32", false},
		{"empty signature", "/add_appointment", add(appt(locator, "", "1"), ""), 2, "`signature` field is empty", false},
		{"negative delay", "/add_appointment", add(appt(locator, "", "-1"), sig), 6, "invalid value: integer `-1`, expected u32", true},
		{"float delay", "/add_appointment", add(appt(locator, "", "1.5"), sig), 3, "invalid type: floating point `1.5`, expected u32", true},
		{"delay too big", "/add_appointment", add(appt(locator, "", "4294967296"), sig), 6, "expected u32", true},
		{"get: empty locator", "/get_appointment", `{"locator": "", "signature": "x"}`, 2, "`locator` field is empty", false},
		{"get: locator size", "/get_appointment", `{"locator": "aa", "signature": "x"}`, 4, "Wrong `locator` field size. Expected 16, received 1", false},
		{"get: empty signature", "/get_appointment", `{"locator": "` + locator + `", "signature": ""}`, 2, "`signature` field is empty", false},
		{"get: missing locator", "/get_appointment", `{"signature": "x"}`, 1, "missing field `locator`", false},
		{"info: empty signature", "/get_subscription_info", `{"signature": ""}`, 2, "`signature` field is empty", false},
		{"info: missing signature", "/get_subscription_info", `{}`, 1, "missing field `signature`", false},
		{"info: syntax error", "/get_subscription_info", `{"signature": "x",}`, 6, "trailing comma at line 1 column 19", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake()
			srv := newServer(t, fake)
			checkError(t, post(t, srv, tc.path, tc.body), http.StatusBadRequest, tc.wantCode, tc.wantMsg, tc.contains)
			assertNoCalls(t, fake)
		})
	}
}

func TestErrorBodyBytes(t *testing.T) {
	srv := newServer(t, newFake())
	got := post(t, srv, "/register", `{"user_id": "aa"}`)
	want := "{\"error\":\"Wrong `user_id` field size. Expected 33, received 1\",\"error_code\":4}"
	if got.body != want {
		t.Errorf("body %s, want %s", got.body, want)
	}
}

func TestStatusMapping(t *testing.T) {
	for _, tc := range []struct {
		err        error
		wantStatus int
		wantCode   int
		wantMsg    string
	}{
		// docs/PROTOCOL.md 5.4, with the messages of 5.5
		{status.Error(codes.InvalidArgument, "Provided public key does not match expected format (33-byte compressed key)"), 400, 5,
			"Provided public key does not match expected format (33-byte compressed key)"},
		{status.Error(codes.NotFound, "Appointment not found"), 404, 36, "Appointment not found"},
		{status.Error(codes.AlreadyExists, "The provided appointment has already been triggered"), 400, 35, "The provided appointment has already been triggered"},
		{status.Error(codes.ResourceExhausted, "Subscription maximum slots count reached"), 400, 65, "Subscription maximum slots count reached"},
		{status.Error(codes.Unauthenticated, "Invalid signature or user does not have enough slots available"), 401, 7,
			"Invalid signature or user does not have enough slots available"},
		{status.Error(codes.Unauthenticated, "Your subscription expired at 420"), 401, 7, "Your subscription expired at 420"},
		{status.Error(codes.Unauthenticated, "User cannot be authenticated"), 401, 7, "User cannot be authenticated"},
		{status.Error(codes.Unauthenticated, "User not found. Have you registered?"), 401, 7, "User not found. Have you registered?"},
		{status.Error(codes.Unavailable, "Service currently unavailable"), 503, 32, "Service currently unavailable"},
		{status.Error(codes.Internal, "internal error"), 400, 255, "internal error"},
		{status.Error(codes.Unknown, "who knows"), 400, 255, "who knows"},
		{status.Error(codes.PermissionDenied, "no"), 400, 255, "no"},
		{status.Error(codes.Canceled, "context canceled"), 400, 255, "context canceled"},
		{status.Error(codes.DeadlineExceeded, "too slow"), 400, 255, "too slow"},
		{status.Error(codes.Unimplemented, ""), 400, 255, ""},
		{errors.New("not a status"), 400, 255, "not a status"},
		// no HTML escaping, as serde_json
		{status.Error(codes.Unauthenticated, `<b>"x" & y</b>`), 401, 7, `<b>"x" & y</b>`},
	} {
		for _, path := range endpoints() {
			t.Run(fmt.Sprintf("%s %v", path, tc.err), func(t *testing.T) {
				fake := newFake()
				fake.err = tc.err
				srv := newServer(t, fake)
				got := post(t, srv, path, validBodies[path])
				checkError(t, got, tc.wantStatus, tc.wantCode, tc.wantMsg, false)
				if len(fake.Calls()) != 1 {
					t.Errorf("%d gRPC calls, want 1", len(fake.Calls()))
				}
			})
		}
	}
	srv := newServer(t, &fakeTower{err: status.Error(codes.Unauthenticated, `<b>"x" & y</b>`)})
	if got := post(t, srv, "/register", validBodies["/register"]).body; got != `{"error":"<b>\"x\" & y</b>","error_code":7}` {
		t.Errorf("body %s", got)
	}
}

func TestStatusToHTTP(t *testing.T) {
	for _, tc := range []struct {
		code       codes.Code
		wantStatus int
		wantCode   int
	}{
		{codes.InvalidArgument, 400, 5},
		{codes.NotFound, 404, 36},
		{codes.AlreadyExists, 400, 35},
		{codes.ResourceExhausted, 400, 65},
		{codes.Unauthenticated, 401, 7},
		{codes.Unavailable, 503, 32},
		{codes.Internal, 400, 255},
		{codes.FailedPrecondition, 400, 255},
		{codes.Aborted, 400, 255},
		{codes.OutOfRange, 400, 255},
		{codes.DataLoss, 400, 255},
	} {
		gotStatus, body := httpapi.StatusToHTTP(status.Error(tc.code, "msg "+tc.code.String()))
		if gotStatus != tc.wantStatus || body.Code != tc.wantCode || body.Message != "msg "+tc.code.String() {
			t.Errorf("%v: got %d %+v, want %d code %d", tc.code, gotStatus, body, tc.wantStatus, tc.wantCode)
		}
	}
	wrapped := fmt.Errorf("call: %w", status.Error(codes.NotFound, "Appointment not found"))
	if got, body := httpapi.StatusToHTTP(wrapped); got != 404 || body.Code != 36 {
		t.Errorf("wrapped NotFound: got %d %+v", got, body)
	}
}

func TestTransportFailure(t *testing.T) {
	// With the internal API down, grpc-go answers Unavailable: 503 / 32, as rust-teos.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv := newServer(t, teosv2.NewPublicTowerServicesClient(conn))
	got := post(t, srv, "/register", validBodies["/register"])
	checkError(t, got, http.StatusServiceUnavailable, 32, "", true)
}

type ctxKey struct{}

func TestRequestContextIsForwarded(t *testing.T) {
	fake := newFake()
	api := httpapi.New(fake, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "marker")))
	}))
	defer srv.Close()
	for _, path := range endpoints() {
		post(t, srv, path, validBodies[path])
	}
	calls := fake.Calls()
	if len(calls) != 4 {
		t.Fatalf("%d calls, want 4", len(calls))
	}
	for _, c := range calls {
		if c.ctx.Value(ctxKey{}) != "marker" {
			t.Errorf("%s: the request's context was not passed on", c.method)
		}
	}
}

func TestForwardedRequests(t *testing.T) {
	fake := newFake()
	srv := newServer(t, fake)
	bodies := map[string]string{
		// upper-case hex is accepted and forwarded as bytes
		"/register": `{"user_id": "` + strings.ToUpper(validID) + `"}`,
		"/add_appointment": `{"appointment": {"locator": "` + locator + `", "encrypted_blob": "00ff", "to_self_delay": 42},
			"signature": "` + sig + `", "ignored": true}`,
		"/get_appointment":       validBodies["/get_appointment"],
		"/get_subscription_info": validBodies["/get_subscription_info"],
	}
	for _, path := range endpoints() {
		if got := post(t, srv, path, bodies[path]); got.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, got.status, got.body)
		}
	}
	want := map[string]proto.Message{
		"Register": &commonv2.RegisterRequest{UserId: mustHex(t, validID)},
		"AddAppointment": &commonv2.AddAppointmentRequest{
			Appointment: &commonv2.Appointment{Locator: mustHex(t, locator), EncryptedBlob: []byte{0x00, 0xff}, ToSelfDelay: 42},
			Signature:   sig,
		},
		"GetAppointment":      &commonv2.GetAppointmentRequest{Locator: mustHex(t, locator), Signature: sig},
		"GetSubscriptionInfo": &commonv2.GetSubscriptionInfoRequest{Signature: sig},
	}
	for _, c := range fake.Calls() {
		if !proto.Equal(c.req, want[c.method]) {
			t.Errorf("%s got %v, want %v", c.method, c.req, want[c.method])
		}
		delete(want, c.method)
	}
	if len(want) != 0 {
		t.Errorf("methods never called: %v", want)
	}
}

func TestSuccessReplies(t *testing.T) {
	penaltyRaw := mustHex(t, "0100000001c997a5e56e104102fa209c6a852dd90660a20b2d9c352423")
	for _, tc := range []struct {
		name, path string
		set        func(f *fakeTower)
	}{
		{"register", "/register", func(f *fakeTower) {
			f.register = &commonv2.RegisterResponse{
				UserId: mustHex(t, validID), AvailableSlots: 10000, SubscriptionStart: 100, SubscriptionExpiry: 4420,
				SubscriptionSignature: sig,
			}
		}},
		{"add_appointment", "/add_appointment", func(f *fakeTower) {
			f.addAppointment = &commonv2.AddAppointmentResponse{
				Locator: mustHex(t, locator), StartBlock: 42, Signature: sig, AvailableSlots: 9999, SubscriptionExpiry: 4420,
			}
		}},
		{"get_appointment_watched", "/get_appointment", func(f *fakeTower) {
			f.getAppointment = &commonv2.GetAppointmentResponse{
				AppointmentData: &commonv2.AppointmentData{AppointmentData: &commonv2.AppointmentData_Appointment{
					Appointment: &commonv2.Appointment{Locator: mustHex(t, locator), EncryptedBlob: []byte{0xAB, 0xCD}, ToSelfDelay: 42},
				}},
				Status: commonv2.GetAppointmentResponse_BEING_WATCHED,
			}
		}},
		{"get_appointment_responded", "/get_appointment", func(f *fakeTower) {
			f.getAppointment = &commonv2.GetAppointmentResponse{
				AppointmentData: &commonv2.AppointmentData{AppointmentData: &commonv2.AppointmentData_Tracker{
					Tracker: &commonv2.Tracker{
						DisputeTxid:  mustHex(t, txidInternal),
						PenaltyTxid:  reversed(mustHex(t, penaltyDisplay)),
						PenaltyRawtx: penaltyRaw,
					},
				}},
				Status: commonv2.GetAppointmentResponse_DISPUTE_RESPONDED,
			}
		}},
		{"get_appointment_no_data", "/get_appointment", func(f *fakeTower) {
			f.getAppointment = &commonv2.GetAppointmentResponse{Status: commonv2.GetAppointmentResponse_NOT_FOUND}
		}},
		{"get_appointment_empty_oneof", "/get_appointment", func(f *fakeTower) {
			f.getAppointment = &commonv2.GetAppointmentResponse{AppointmentData: &commonv2.AppointmentData{}, Status: 7}
		}},
		{"get_subscription_info", "/get_subscription_info", func(f *fakeTower) {
			f.getSubscriptionInfo = &commonv2.GetSubscriptionInfoResponse{
				AvailableSlots: 9998, SubscriptionExpiry: 4420, Locators: [][]byte{mustHex(t, locator), mustHex(t, txidInternal[:32])},
			}
		}},
		{"get_subscription_info_no_locators", "/get_subscription_info", func(f *fakeTower) {
			f.getSubscriptionInfo = &commonv2.GetSubscriptionInfoResponse{AvailableSlots: 10000, SubscriptionExpiry: 4420}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake()
			tc.set(fake)
			srv := newServer(t, fake)
			got := post(t, srv, tc.path, validBodies[tc.path])
			if got.status != http.StatusOK {
				t.Fatalf("status %d, body %s", got.status, got.body)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			checkGolden(t, tc.name, got.body)
		})
	}
}

// TestTrackerTxidsDisplayOrder pins the byte order independently of the golden files.
func TestTrackerTxidsDisplayOrder(t *testing.T) {
	fake := newFake()
	fake.getAppointment = &commonv2.GetAppointmentResponse{
		AppointmentData: &commonv2.AppointmentData{AppointmentData: &commonv2.AppointmentData_Tracker{
			Tracker: &commonv2.Tracker{DisputeTxid: mustHex(t, txidInternal), PenaltyTxid: mustHex(t, txidInternal), PenaltyRawtx: []byte{1}},
		}},
		Status: commonv2.GetAppointmentResponse_DISPUTE_RESPONDED,
	}
	got := post(t, newServer(t, fake), "/get_appointment", validBodies["/get_appointment"])
	want := `{"appointment":{"dispute_txid":"` + txidDisplay + `","penalty_txid":"` + txidDisplay +
		`","penalty_rawtx":"01"},"status":"dispute_responded"}`
	if got.body != want {
		t.Errorf("body %s\nwant %s", got.body, want)
	}
	// The reply must not have reversed the client's slice in place.
	tr := fake.getAppointment.GetAppointmentData().GetTracker()
	if hex.EncodeToString(tr.GetDisputeTxid()) != txidInternal {
		t.Error("the gRPC response was modified")
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal([]byte(got), want) {
		t.Errorf("body differs from %s\n got: %s\nwant: %s", path, got, want)
	}
}

func TestOddInProcessRequests(t *testing.T) {
	// Hand-built requests must not panic the handler.
	fake := newFake()
	api := httpapi.New(fake, nil)
	for name, req := range map[string]*http.Request{
		"nil body": {Method: http.MethodPost, URL: mustURL(t, "/register"),
			Header: http.Header{"Content-Length": {"0"}}},
		"empty content-type": {Method: http.MethodPost, URL: mustURL(t, "/register"), Body: http.NoBody,
			Header: http.Header{"Content-Length": {"0"}, "Content-Type": {}}},
		"empty content-length": {Method: http.MethodPost, URL: mustURL(t, "/register"), Body: http.NoBody,
			Header: http.Header{"Content-Length": {}}},
	} {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code < 400 {
			t.Errorf("%s: got %d, want an error", name, rec.Code)
		}
	}
	assertNoCalls(t, fake)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
