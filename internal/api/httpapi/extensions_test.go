package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/api/httpapi"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// fakeExtensions answers add_appointments item by item with answer(i, request), or err.
type fakeExtensions struct {
	teosv2.PublicTowerExtensionsClient // methods these tests do not use (nil: calling one panics)
	calls                              []*teosv2.AddAppointmentsRequest
	answer                             func(i int, req *commonv2.AddAppointmentRequest) *teosv2.AddAppointmentResult
	info                               *teosv2.GetInfoResponse
	err                                error
}

func (f *fakeExtensions) AddAppointments(_ context.Context, in *teosv2.AddAppointmentsRequest, _ ...grpc.CallOption) (*teosv2.AddAppointmentsResponse, error) {
	f.calls = append(f.calls, in)
	if f.err != nil {
		return nil, f.err
	}
	out := &teosv2.AddAppointmentsResponse{}
	for i, r := range in.GetAppointments() {
		out.Results = append(out.Results, f.answer(i, r))
	}
	return out, nil
}

func (f *fakeExtensions) GetInfo(context.Context, *emptypb.Empty, ...grpc.CallOption) (*teosv2.GetInfoResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.info, nil
}

func receiptFor(i int, req *commonv2.AddAppointmentRequest) *teosv2.AddAppointmentResult {
	return &teosv2.AddAppointmentResult{Result: &teosv2.AddAppointmentResult_Receipt{Receipt: &commonv2.AddAppointmentResponse{
		Locator: req.GetAppointment().GetLocator(), StartBlock: 42, Signature: sig, AvailableSlots: uint32(100 - i), SubscriptionExpiry: 4420,
	}}}
}

func newExtFake() *fakeExtensions {
	return &fakeExtensions{
		answer: receiptFor,
		info:   &teosv2.GetInfoResponse{TowerId: mustHexT(validID), Version: "0.1.0", Extensions: []string{"add_appointments"}},
	}
}

func mustHexT(s string) []byte {
	var b []byte
	_, _ = fmt.Sscanf(s, "%x", &b)
	return b
}

func newExtServer(t *testing.T, fake *fakeTower, ext *fakeExtensions) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.NewWithExtensions(fake, ext, nil))
	t.Cleanup(srv.Close)
	return srv
}

func batchBody(items ...string) string {
	return `{"appointments": [` + strings.Join(items, ", ") + `]}`
}

func TestExtensionRouting(t *testing.T) {
	plain := newServer(t, newFake())
	ext := newExtServer(t, newFake(), newExtFake())
	body := batchBody(validBodies["/add_appointment"])
	// Without extensions the new paths behave like any unknown path.
	checkText(t, send(t, plain, http.MethodGet, "/info", "", "-"), http.StatusMethodNotAllowed, "HTTP method not allowed")
	checkText(t, post(t, plain, "/add_appointments", body), http.StatusMethodNotAllowed, "HTTP method not allowed")
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/info"}, {http.MethodGet, "/add_appointments"}, {http.MethodPut, "/add_appointments"},
	} {
		checkText(t, send(t, ext, tc.method, tc.path, body, "application/json"), http.StatusMethodNotAllowed, "HTTP method not allowed")
	}
	if got := post(t, ext, "/add_appointments", body); got.status != http.StatusOK {
		t.Fatalf("POST /add_appointments: %d %s", got.status, got.body)
	}
}

// The standard endpoints answer byte for byte the same with the extensions on.
func TestStandardEndpointsUnchangedByExtensions(t *testing.T) {
	plain := newServer(t, newFake())
	ext := newExtServer(t, newFake(), newExtFake())
	for _, path := range endpoints() {
		for _, body := range []string{validBodies[path], `{}`, `x`, padTo(t, validBodies[path], bodyLimits[path]+1)} {
			a, b := post(t, plain, path, body), post(t, ext, path, body)
			if a.status != b.status || a.body != b.body || a.header.Get("Content-Type") != b.header.Get("Content-Type") {
				t.Errorf("%s %q: %d %s without extensions, %d %s with", path, body, a.status, a.body, b.status, b.body)
			}
		}
	}
}

func TestAddAppointmentsBodyLimit(t *testing.T) {
	const limit = 2_200_000
	ext := newExtFake()
	srv := newExtServer(t, newFake(), ext)
	atLimit := padTo(t, batchBody(validBodies["/add_appointment"]), limit)
	if got := post(t, srv, "/add_appointments", atLimit); got.status != http.StatusOK || len(ext.calls) != 1 {
		t.Fatalf("body at the limit: %d %s", got.status, got.body)
	}
	checkText(t, post(t, srv, "/add_appointments", atLimit+" "), http.StatusRequestEntityTooLarge, "The request payload is too large")
	checkText(t, send(t, srv, http.MethodPost, "/add_appointments", atLimit, "text/plain"), http.StatusUnsupportedMediaType,
		"The request's content-type is not supported")
	got := sendRaw(t, srv, "POST /add_appointments HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	checkText(t, got, http.StatusLengthRequired, "A content-length header is required")
	if len(ext.calls) != 1 {
		t.Fatalf("rejected requests reached the core: %d calls", len(ext.calls))
	}
}

func TestAddAppointmentsWholeBodyErrors(t *testing.T) {
	tooMany := strings.Repeat(validBodies["/add_appointment"]+",", 1000) + validBodies["/add_appointment"]
	for _, tc := range []struct {
		name, body string
		code       int
		msg        string
	}{
		{"not json", `{`, 6, "EOF while parsing an object at line 1 column 1"},
		{"not an object", `[]`, 6, "invalid length 0, expected struct AddAppointmentsRequest with 1 element at line 1 column 2"},
		{"string", `"a"`, 3, `invalid type: string "a", expected struct AddAppointmentsRequest at line 1 column 3`},
		{"no appointments", `{"appointment": {}}`, 1, "missing field `appointments`"},
		{"not a list", `{"appointments": 1}`, 3, "invalid type: integer `1`, expected a sequence at line 1 column 18"},
		{"empty list", `{"appointments": []}`, 6, "`appointments` is empty"},
		{"too many", `{"appointments": [` + tooMany + `]}`, 6, "`appointments` holds 1001 items, at most 1000 are allowed"},
		{"broken item", `{"appointments": [{"a": tru}]}`, 6, "expected ident at line 1 column 28"},
		{"trailing characters", `{"appointments": [{}]} x`, 6, "trailing characters at line 1 column 24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext := newExtFake()
			srv := newExtServer(t, newFake(), ext)
			checkError(t, post(t, srv, "/add_appointments", tc.body), http.StatusBadRequest, tc.code, tc.msg, false)
			if len(ext.calls) != 0 {
				t.Fatal("the request reached the core")
			}
		})
	}
}

func TestAddAppointmentsCoreUnavailable(t *testing.T) {
	ext := newExtFake()
	ext.err = status.Error(codes.Unavailable, "Service currently unavailable")
	srv := newExtServer(t, newFake(), ext)
	checkError(t, post(t, srv, "/add_appointments", batchBody(validBodies["/add_appointment"])),
		http.StatusServiceUnavailable, 32, "Service currently unavailable", false)
	checkError(t, send(t, srv, http.MethodGet, "/info", "", "-"), http.StatusServiceUnavailable, 32, "Service currently unavailable", false)
}

// Items the inspector refuses never reach the core; the others keep their places.
func TestAddAppointmentsMixedResults(t *testing.T) {
	ext := newExtFake()
	ext.answer = func(i int, req *commonv2.AddAppointmentRequest) *teosv2.AddAppointmentResult {
		errs := map[int]error{
			1: status.Error(codes.Unauthenticated, "Invalid signature or user does not have enough slots available"),
			2: status.Error(codes.AlreadyExists, "The provided appointment has already been triggered"),
			3: status.Error(codes.Unauthenticated, "Your subscription expired at 4420"),
			4: status.Error(codes.Internal, "internal error"),
		}
		if err, ok := errs[i]; ok {
			st, _ := status.FromError(err)
			return &teosv2.AddAppointmentResult{Result: &teosv2.AddAppointmentResult_Error{
				Error: &teosv2.AppointmentError{Code: uint32(st.Code()), Message: st.Message()},
			}}
		}
		return receiptFor(i, req)
	}
	srv := newExtServer(t, newFake(), ext)
	ok := validBodies["/add_appointment"]
	items := []string{
		ok,
		`{"signature": "` + sig + `"}`, // missing appointment
		ok,                             // core: 401
		strings.Replace(ok, locator, locator32, 1), // wrong size
		ok, // core: 35
		`{"appointment": {"locator": "zz"}, "signature": ""}`, // bad hex
		ok, // core: expired
		ok, // core: internal
		`{"appointment": {"locator": "` + locator + `", "encrypted_blob": "", "to_self_delay": 1}, "signature": ""}`, // empty sig
		ok,
	}
	got := post(t, srv, "/add_appointments", batchBody(items...))
	if got.status != http.StatusOK || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", got.status, got.body)
	}
	if n := len(ext.calls[0].GetAppointments()); n != 6 {
		t.Fatalf("%d items reached the core, want 6", n)
	}
	checkGolden(t, "add_appointments_mixed", got.body)
	// Each refused item answers what /add_appointment answers for it alone.
	plain := newServer(t, newFake())
	for _, i := range []int{1, 3, 5, 8} {
		alone := post(t, plain, "/add_appointment", items[i])
		if !strings.Contains(got.body, alone.body) {
			t.Errorf("item %d: /add_appointment says %s, missing from %s", i, alone.body, got.body)
		}
	}
}

func TestInfo(t *testing.T) {
	srv := newExtServer(t, newFake(), newExtFake())
	got := send(t, srv, http.MethodGet, "/info", "", "-")
	if got.status != http.StatusOK || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", got.status, got.body)
	}
	checkGolden(t, "info", got.body)
}
