package httpapi

import (
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/pkg/teos"
)

// ErrorBody is the JSON body of every application error, fields in this order.
type ErrorBody struct {
	Message string `json:"error"`
	Code    int    `json:"error_code"`
}

// StatusToHTTP translates an error from the internal gRPC API into the HTTP status and
// body rust-teos answers with (match_status in teos/src/api/http.rs). The message is the
// status message verbatim.
//
// A call that never reached the core still gets a status: grpc-go reports a refused or
// broken connection as Unavailable, so it becomes 503 / 32, as tonic's connect errors do
// in rust-teos. A non-status error is Unknown to status.FromError and becomes 400 / 255,
// as tonic's fallback Code::Unknown does. err must not be nil.
func StatusToHTTP(err error) (int, ErrorBody) {
	st, _ := status.FromError(err)
	httpStatus, code := http.StatusBadRequest, teos.ErrCodeUnexpectedError
	switch st.Code() {
	case codes.InvalidArgument:
		code = teos.ErrCodeWrongFieldFormat
	case codes.NotFound:
		httpStatus, code = http.StatusNotFound, teos.ErrCodeAppointmentNotFound
	case codes.AlreadyExists:
		code = teos.ErrCodeAppointmentAlreadyTriggered
	case codes.ResourceExhausted:
		code = teos.ErrCodeRegistrationResourceExhausted
	case codes.Unauthenticated:
		httpStatus, code = http.StatusUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError
	case codes.Unavailable:
		httpStatus, code = http.StatusServiceUnavailable, teos.ErrCodeServiceUnavailable
	}
	return httpStatus, ErrorBody{Message: st.Message(), Code: code}
}
