package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/httpapi"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

const msgDamaged = "Service currently unavailable: the tower's database needs repair, send again later"

// An add the core could not serve because it reached a damaged page of the database (DataLoss)
// is answered 503 with error_code 7, which the CLN plugin keeps pending, whole or per batch
// item; any other endpoint keeps rust-teos's mapping of an unexpected status (400 / 255).
func TestDamagedDatabaseAddsSendAgain(t *testing.T) {
	damaged := status.Error(codes.DataLoss, msgDamaged)
	for _, tc := range []struct {
		path, body   string
		status, code int
	}{
		{"/add_appointment", validBodies["/add_appointment"], http.StatusServiceUnavailable, 7},
		{"/add_appointments", batchBody(validBodies["/add_appointment"]), http.StatusServiceUnavailable, 7},
		{"/get_appointment", validBodies["/get_appointment"], http.StatusBadRequest, 255},
	} {
		t.Run(tc.path, func(t *testing.T) {
			fake, ext := newFake(), newExtFake()
			fake.err, ext.err = damaged, damaged
			srv := httptest.NewServer(httpapi.NewHandler(httpapi.Config{Client: fake, Ext: ext}))
			t.Cleanup(srv.Close)
			checkError(t, post(t, srv, tc.path, tc.body), tc.status, tc.code, msgDamaged, false)
		})
	}

	t.Run("batch item", func(t *testing.T) {
		ext := newExtFake()
		ext.answer = func(i int, req *commonv2.AddAppointmentRequest) *teosv2.AddAppointmentResult {
			if i == 0 {
				return receiptFor(i, req)
			}
			return &teosv2.AddAppointmentResult{Result: &teosv2.AddAppointmentResult_Error{
				Error: &teosv2.AppointmentError{Code: uint32(codes.DataLoss), Message: msgDamaged}}}
		}
		got := post(t, newExtServer(t, newFake(), ext), "/add_appointments",
			batchBody(validBodies["/add_appointment"], validBodies["/add_appointment"]))
		want := `{"error":"` + msgDamaged + `","error_code":7}]}`
		if got.status != http.StatusOK || !strings.HasSuffix(strings.TrimSpace(got.body), want) {
			t.Fatalf("%d %s, want 200 ending with the item %s", got.status, got.body, want)
		}
	})
}
