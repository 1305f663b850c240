package httpapi

import (
	"encoding/hex"
	"net/http"
	"strconv"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
)

// writeReceipt answers add_appointment with its receipt, byte for byte what writeJSON makes of
// newAddAppointmentReply(r), without encoding/json's reflection and buffers: it is the reply
// of the busiest endpoint.
func (h *handler) writeReceipt(w http.ResponseWriter, r *commonv2.AddAppointmentResponse) {
	b, ok := appendReceipt(make([]byte, 0, 256), r)
	if !ok {
		h.writeJSON(w, http.StatusOK, newAddAppointmentReply(r))
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// jsonContentType is the Content-Type header value of every JSON reply, shared to save an
// allocation per reply: net/http only reads it, and its length is its capacity, so an append
// to a reply's value copies it.
var jsonContentType = []string{"application/json"}

// appendReceipt appends the receipt's JSON to b. ok is false when the signature holds a byte
// encoding/json would escape (never for a zbase32 signature): the caller then uses writeJSON.
func appendReceipt(b []byte, r *commonv2.AddAppointmentResponse) ([]byte, bool) {
	sig := r.GetSignature()
	if !plainJSON(sig) {
		return b, false
	}
	b = append(b, `{"locator":"`...)
	b = hex.AppendEncode(b, r.GetLocator())
	b = append(b, `","start_block":`...)
	b = strconv.AppendUint(b, uint64(r.GetStartBlock()), 10)
	b = append(b, `,"signature":"`...)
	b = append(b, sig...)
	b = append(b, `","available_slots":`...)
	b = strconv.AppendUint(b, uint64(r.GetAvailableSlots()), 10)
	b = append(b, `,"subscription_expiry":`...)
	b = strconv.AppendUint(b, uint64(r.GetSubscriptionExpiry()), 10)
	return append(b, '}'), true
}

// plainJSON reports whether encoding/json (without HTML escaping) writes s unchanged between
// its quotes: printable ASCII other than '"' and '\'.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
