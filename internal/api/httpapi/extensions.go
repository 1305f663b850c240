package httpapi

import (
	"encoding/hex"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/inspector"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// teos-go extensions to the v0.2 API. They never change what the standard endpoints answer.

// addAppointmentsReply is {"results": [...]}, one entry per item in request order: an
// addAppointmentReply or an ErrorBody.
type addAppointmentsReply struct {
	Results []any `json:"results"`
}

type infoReply struct {
	TowerID    string   `json:"tower_id"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// addAppointments serves POST /add_appointments: items the inspector refuses get its error,
// the rest go to the core in one call and get a receipt or add_appointment's error.
func (h *handler) addAppointments(w http.ResponseWriter, r *http.Request, body []byte) {
	body, ok := h.decodeContent(w, r, body, addAppointmentsBodyLimit) // encoding.go
	if !ok {
		return
	}
	if wantsNDJSON(r) {
		h.addAppointmentsStream(w, r, body) // stream.go
		return
	}
	items, err := inspector.InspectAddAppointments(body)
	if err != nil {
		h.writeRejection(w, r, err)
		return
	}
	results := make([]any, len(items))
	req := &teosv2.AddAppointmentsRequest{}
	var index []int // req.Appointments[j] is items[index[j]]
	for i, it := range items {
		if it.Err != nil {
			results[i] = rejectionBody(it.Err)
			continue
		}
		a := it.Request.Appointment
		req.Appointments = append(req.Appointments, &commonv2.AddAppointmentRequest{
			Appointment: &commonv2.Appointment{Locator: a.Locator[:], EncryptedBlob: a.EncryptedBlob, ToSelfDelay: a.ToSelfDelay},
			Signature:   it.Request.Signature,
		})
		index = append(index, i)
	}
	if len(index) > 0 {
		resp, err := h.ext.AddAppointments(r.Context(), req)
		if err != nil {
			h.writeStatus(w, r, err)
			return
		}
		if len(resp.GetResults()) != len(index) {
			h.writeStatus(w, r, status.Errorf(codes.Internal, "%d results for %d appointments", len(resp.GetResults()), len(index)))
			return
		}
		for j, res := range resp.GetResults() {
			results[index[j]] = batchResult(res)
		}
	}
	h.writeJSON(w, http.StatusOK, addAppointmentsReply{Results: results})
}

// batchResult renders one core answer as /add_appointment would have, minus the status line.
func batchResult(res *teosv2.AddAppointmentResult) any {
	if receipt := res.GetReceipt(); receipt != nil {
		return newAddAppointmentReply(receipt)
	}
	e := res.GetError()
	code := codes.Unknown // no result at all: an unexpected error, as for a non-status error
	if e != nil {
		code = codes.Code(e.GetCode())
	}
	if code == codes.DataLoss { // a damaged database: sent again later, as damagedAnswer
		return ErrorBody{Message: e.GetMessage(), Code: teos.ErrCodeInvalidSignatureOrSubscriptionError}
	}
	_, body := StatusToHTTP(status.Error(code, e.GetMessage()))
	return body
}

// rejectionBody is the body of a request, or batch item, the inspector refused.
func rejectionBody(err error) ErrorBody {
	body := ErrorBody{Message: err.Error(), Code: teos.ErrCodeInvalidRequestFormat}
	if ierr, ok := errors.AsType[*inspector.Error](err); ok {
		body.Code = ierr.Code
	}
	return body
}

// info serves GET /info so clients can tell which extensions this tower has.
func (h *handler) info(w http.ResponseWriter, r *http.Request, _ []byte) {
	resp, err := h.ext.GetInfo(r.Context(), &emptypb.Empty{})
	if err != nil {
		h.writeStatus(w, r, err)
		return
	}
	extensions := append([]string{}, resp.GetExtensions()...) // [] rather than null
	h.writeJSON(w, http.StatusOK, infoReply{
		TowerID:    hex.EncodeToString(resp.GetTowerId()),
		Version:    resp.GetVersion(),
		Extensions: extensions,
	})
}
