package httpapi

import (
	"encoding/hex"
	"net/http"

	"github.com/teos-go/teos/internal/inspector"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// deleteAppointmentBodyLimit is get_appointment's: the body has the same two fields.
const deleteAppointmentBodyLimit = getAppointmentBodyLimit

// deleteAppointmentReply is the deletion receipt; signature is the tower's over
// teos.DeletionReceiptBytes(request signature, deletion_block).
type deleteAppointmentReply struct {
	Locator            string `json:"locator"`
	DeletionBlock      uint32 `json:"deletion_block"`
	Signature          string `json:"signature"`
	AvailableSlots     uint32 `json:"available_slots"`
	SubscriptionExpiry uint32 `json:"subscription_expiry"`
}

// deleteAppointment serves POST /delete_appointment (teos-go extension, the BOLT13 draft's
// delete_appointment): {"locator", "signature"} checked exactly as get_appointment's body.
func (h *handler) deleteAppointment(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := inspector.InspectGetAppointment(body)
	if err != nil {
		h.writeRejection(w, r, err)
		return
	}
	resp, err := h.ext.DeleteAppointment(r.Context(), &teosv2.DeleteAppointmentRequest{
		Locator:   req.Locator[:],
		Signature: req.Signature,
	})
	if err != nil {
		h.writeStatus(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, deleteAppointmentReply{
		Locator:            hex.EncodeToString(resp.GetLocator()),
		DeletionBlock:      resp.GetDeletionBlock(),
		Signature:          resp.GetSignature(),
		AvailableSlots:     resp.GetAvailableSlots(),
		SubscriptionExpiry: resp.GetSubscriptionExpiry(),
	})
}
