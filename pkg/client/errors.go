package client

import (
	"errors"
	"fmt"

	"github.com/teos-go/teos/pkg/teos"
)

// ErrMisbehaving is wrapped by the error returned when a tower's answer fails verification: a
// receipt not signed by the tower id, or a registration that does not extend the previous one.
// The tower is marked (Tower.Misbehaving) and refuses further Register and AddAppointment calls.
var ErrMisbehaving = errors.New("tower misbehaving")

// ErrBadResponse is wrapped when a tower answers 200 with a body that cannot be decoded.
var ErrBadResponse = errors.New("malformed tower response")

// ErrResponseTooLarge (which wraps ErrBadResponse) is returned for an answer over the client's
// bound: 8 MiB, or for get_subscription_info the locators of WithMaxLocators.
var ErrResponseTooLarge = fmt.Errorf("%w: answer too large", ErrBadResponse)

// APIError is an error answer from the tower. For a per-item error in a batch, HTTPStatus is 0.
type APIError struct {
	HTTPStatus int
	// Code is the teos error_code (teos.ErrCode*); 0 when the body was not a teos error.
	Code    int
	Message string
}

func (e *APIError) Error() string {
	if e.HTTPStatus == 0 {
		return fmt.Sprintf("tower error %d: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("tower error (HTTP %d, code %d): %s", e.HTTPStatus, e.Code, e.Message)
}

// MisbehaviorError is the error, wrapping ErrMisbehaving, that marked a tower misbehaving
// (Tower.Misbehaving returns it), so a caller can keep the evidence.
type MisbehaviorError struct {
	TowerID teos.UserID
	Reason  string
	// Proof is set when a signed receipt is the evidence.
	Proof *MisbehaviorProof
}

func (e *MisbehaviorError) Error() string {
	return fmt.Sprintf("%v: tower %s: %s", ErrMisbehaving, e.TowerID, e.Reason)
}

func (e *MisbehaviorError) Unwrap() error { return ErrMisbehaving }

// MisbehaviorProof is a receipt that does not check out: what the tower signed (Message,
// hex, e.g. teos.AppointmentReceiptBytes), its Signature, and whom the signature recovers to
// (RecoveredID, empty if it recovers to no key), as the CLN plugin keeps it.
type MisbehaviorProof struct {
	Locator     string `json:"locator"`
	Message     string `json:"message"`
	Signature   string `json:"signature"`
	RecoveredID string `json:"recovered_id,omitempty"`
}
