package httpapi

import (
	"encoding/hex"
	"slices"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
)

// The reply bodies. They are not protojson: clients expect hex for bytes, txids in display
// order and the snake_case status strings of rust-teos's serde derives. Field order is the
// serde struct order, which encoding/json keeps.

type registerReply struct {
	UserID                string `json:"user_id"`
	AvailableSlots        uint32 `json:"available_slots"`
	SubscriptionStart     uint32 `json:"subscription_start"`
	SubscriptionExpiry    uint32 `json:"subscription_expiry"`
	SubscriptionSignature string `json:"subscription_signature"`
}

type addAppointmentReply struct {
	Locator            string `json:"locator"`
	StartBlock         uint32 `json:"start_block"`
	Signature          string `json:"signature"`
	AvailableSlots     uint32 `json:"available_slots"`
	SubscriptionExpiry uint32 `json:"subscription_expiry"`
}

type appointmentJSON struct {
	Locator       string `json:"locator"`
	EncryptedBlob string `json:"encrypted_blob"`
	ToSelfDelay   uint32 `json:"to_self_delay"`
}

type trackerJSON struct {
	DisputeTxid  string `json:"dispute_txid"`
	PenaltyTxid  string `json:"penalty_txid"`
	PenaltyRawtx string `json:"penalty_rawtx"`
}

type getAppointmentReply struct {
	// *appointmentJSON or *trackerJSON (the oneof flattened), struct{} when the oneof is
	// unset and nil (null) when there is no data at all, as serde renders those cases.
	Appointment any    `json:"appointment"`
	Status      string `json:"status"`
}

type subscriptionInfoReply struct {
	AvailableSlots     uint32   `json:"available_slots"`
	SubscriptionExpiry uint32   `json:"subscription_expiry"`
	Locators           []string `json:"locators"`
}

func newRegisterReply(r *commonv2.RegisterResponse) registerReply {
	return registerReply{
		UserID:                hex.EncodeToString(r.GetUserId()),
		AvailableSlots:        r.GetAvailableSlots(),
		SubscriptionStart:     r.GetSubscriptionStart(),
		SubscriptionExpiry:    r.GetSubscriptionExpiry(),
		SubscriptionSignature: r.GetSubscriptionSignature(),
	}
}

func newAddAppointmentReply(r *commonv2.AddAppointmentResponse) addAppointmentReply {
	return addAppointmentReply{
		Locator:            hex.EncodeToString(r.GetLocator()),
		StartBlock:         r.GetStartBlock(),
		Signature:          r.GetSignature(),
		AvailableSlots:     r.GetAvailableSlots(),
		SubscriptionExpiry: r.GetSubscriptionExpiry(),
	}
}

func newGetAppointmentReply(r *commonv2.GetAppointmentResponse) getAppointmentReply {
	reply := getAppointmentReply{Status: statusString(r.GetStatus())}
	data := r.GetAppointmentData()
	switch {
	case data == nil:
	case data.GetAppointment() != nil:
		a := data.GetAppointment()
		reply.Appointment = &appointmentJSON{
			Locator:       hex.EncodeToString(a.GetLocator()),
			EncryptedBlob: hex.EncodeToString(a.GetEncryptedBlob()),
			ToSelfDelay:   a.GetToSelfDelay(),
		}
	case data.GetTracker() != nil:
		t := data.GetTracker()
		reply.Appointment = &trackerJSON{
			DisputeTxid:  displayHex(t.GetDisputeTxid()),
			PenaltyTxid:  displayHex(t.GetPenaltyTxid()),
			PenaltyRawtx: hex.EncodeToString(t.GetPenaltyRawtx()),
		}
	default:
		reply.Appointment = struct{}{}
	}
	return reply
}

func newSubscriptionInfoReply(r *commonv2.GetSubscriptionInfoResponse) subscriptionInfoReply {
	locators := make([]string, 0, len(r.GetLocators())) // [] rather than null when empty
	for _, l := range r.GetLocators() {
		locators = append(locators, hex.EncodeToString(l))
	}
	return subscriptionInfoReply{
		AvailableSlots:     r.GetAvailableSlots(),
		SubscriptionExpiry: r.GetSubscriptionExpiry(),
		Locators:           locators,
	}
}

// statusString maps the enum as rust-teos does; unknown values read as not_found.
func statusString(s commonv2.GetAppointmentResponse_AppointmentStatus) string {
	switch s {
	case commonv2.GetAppointmentResponse_BEING_WATCHED:
		return "being_watched"
	case commonv2.GetAppointmentResponse_DISPUTE_RESPONDED:
		return "dispute_responded"
	default:
		return "not_found"
	}
}

// displayHex turns an internal-order txid into the hex bitcoind prints.
func displayHex(internal []byte) string {
	b := slices.Clone(internal)
	slices.Reverse(b)
	return hex.EncodeToString(b)
}
