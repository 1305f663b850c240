// Package inspector validates the bodies of the public HTTP API the way rust-teos v0.2
// does: it decodes each endpoint's JSON into typed values, or returns an *Error holding the
// teos error code and message a rust-teos tower would answer with. It does no I/O and
// checks nothing that needs tower state (signatures, curve points, subscriptions).
package inspector

import (
	"fmt"
	"strings"

	"github.com/teos-go/teos/internal/serdejson"
	"github.com/teos-go/teos/pkg/teos"
)

// RegisterRequest is a checked /register body.
type RegisterRequest struct {
	// UserID has the right size but is not yet known to be a curve point: the core checks
	// that and answers InvalidArgument.
	UserID [teos.UserIDLen]byte
}

// AddAppointmentRequest is a checked /add_appointment body. Neither the blob nor
// to_self_delay is checked (rust-teos does not either).
type AddAppointmentRequest struct {
	Appointment teos.Appointment
	Signature   string // zbase32 text, non-empty, not yet verified
}

// GetAppointmentRequest is a checked /get_appointment body.
type GetAppointmentRequest struct {
	Locator   teos.Locator
	Signature string
}

// GetSubscriptionInfoRequest is a checked /get_subscription_info body.
type GetSubscriptionInfoRequest struct {
	Signature string
}

// The Rust structs serde fills, named as in rust-teos (the names appear in messages).
var (
	registerSpec = &serdejson.Struct{Name: "RegisterRequest", Fields: []serdejson.Field{
		{Name: "user_id", Kind: serdejson.KindHex},
	}}
	appointmentSpec = &serdejson.Struct{Name: "Appointment", Fields: []serdejson.Field{
		{Name: "locator", Kind: serdejson.KindHex},
		{Name: "encrypted_blob", Kind: serdejson.KindHex},
		{Name: "to_self_delay", Kind: serdejson.KindU32},
	}}
	addAppointmentSpec = &serdejson.Struct{Name: "AddAppointmentRequest", Fields: []serdejson.Field{
		{Name: "appointment", Kind: serdejson.KindStruct, Optional: true, Sub: appointmentSpec},
		{Name: "signature", Kind: serdejson.KindString},
	}}
	getAppointmentSpec = &serdejson.Struct{Name: "GetAppointmentRequest", Fields: []serdejson.Field{
		{Name: "locator", Kind: serdejson.KindHex},
		{Name: "signature", Kind: serdejson.KindString},
	}}
	getSubscriptionInfoSpec = &serdejson.Struct{Name: "GetSubscriptionInfoRequest", Fields: []serdejson.Field{
		{Name: "signature", Kind: serdejson.KindString},
	}}
)

// InspectRegister checks a /register body.
func InspectRegister(body []byte) (RegisterRequest, error) {
	vals, err := decode(body, registerSpec)
	if err != nil {
		return RegisterRequest{}, err
	}
	id, err := CheckUserID(vals[0].Bytes)
	if err != nil {
		return RegisterRequest{}, err
	}
	return RegisterRequest{UserID: id}, nil
}

// InspectAddAppointment checks an /add_appointment body.
func InspectAddAppointment(body []byte) (AddAppointmentRequest, error) {
	vals, err := decode(body, addAppointmentSpec)
	if err != nil {
		return AddAppointmentRequest{}, err
	}
	appt := vals[0]
	if appt == nil || appt.Null {
		return AddAppointmentRequest{}, missingField("appointment")
	}
	loc, err := CheckLocator(appt.Sub[0].Bytes)
	if err != nil {
		return AddAppointmentRequest{}, err
	}
	sig := vals[1].Str
	if err := CheckSignature(sig); err != nil {
		return AddAppointmentRequest{}, err
	}
	return AddAppointmentRequest{
		Appointment: teos.Appointment{
			Locator:       loc,
			EncryptedBlob: appt.Sub[1].Bytes,
			ToSelfDelay:   appt.Sub[2].U32,
		},
		Signature: sig,
	}, nil
}

// InspectGetAppointment checks a /get_appointment body.
func InspectGetAppointment(body []byte) (GetAppointmentRequest, error) {
	vals, err := decode(body, getAppointmentSpec)
	if err != nil {
		return GetAppointmentRequest{}, err
	}
	loc, err := CheckLocator(vals[0].Bytes)
	if err != nil {
		return GetAppointmentRequest{}, err
	}
	sig := vals[1].Str
	if err := CheckSignature(sig); err != nil {
		return GetAppointmentRequest{}, err
	}
	return GetAppointmentRequest{Locator: loc, Signature: sig}, nil
}

// InspectGetSubscriptionInfo checks a /get_subscription_info body.
func InspectGetSubscriptionInfo(body []byte) (GetSubscriptionInfoRequest, error) {
	vals, err := decode(body, getSubscriptionInfoSpec)
	if err != nil {
		return GetSubscriptionInfoRequest{}, err
	}
	sig := vals[0].Str
	if err := CheckSignature(sig); err != nil {
		return GetSubscriptionInfoRequest{}, err
	}
	return GetSubscriptionInfoRequest{Signature: sig}, nil
}

// CheckUserID applies the HTTP layer's user_id checks (empty, then size). It does not
// check that the bytes are a point on the curve.
func CheckUserID(b []byte) ([teos.UserIDLen]byte, error) {
	var id [teos.UserIDLen]byte
	if err := checkSize("user_id", len(b), teos.UserIDLen); err != nil {
		return id, err
	}
	copy(id[:], b)
	return id, nil
}

// CheckLocator applies the locator checks (empty, then size).
func CheckLocator(b []byte) (teos.Locator, error) {
	var loc teos.Locator
	if err := checkSize("locator", len(b), teos.LocatorLen); err != nil {
		return loc, err
	}
	copy(loc[:], b)
	return loc, nil
}

// CheckSignature rejects an empty signature; its validity is the core's business.
func CheckSignature(sig string) error {
	if sig == "" {
		return emptyField("signature")
	}
	return nil
}

func checkSize(name string, got, want int) error {
	if got == 0 {
		return emptyField(name)
	}
	if got != want {
		return &Error{
			Code:    teos.ErrCodeWrongFieldSize,
			Message: fmt.Sprintf("Wrong `%s` field size. Expected %d, received %d", name, want, got),
		}
	}
	return nil
}

func emptyField(name string) *Error {
	return &Error{Code: teos.ErrCodeEmptyField, Message: fmt.Sprintf("`%s` field is empty", name)}
}

func missingField(name string) *Error {
	return &Error{Code: teos.ErrCodeMissingField, Message: fmt.Sprintf("missing field `%s`", name)}
}

func decode(body []byte, s *serdejson.Struct) ([]*serdejson.Value, error) {
	vals, serr := serdejson.Decode(body, s)
	if serr != nil {
		return nil, classify(serr.String())
	}
	return vals, nil
}

// classify picks the code from serde's message by substring, in rust-teos's order
// (handle_rejection in teos/src/api/http.rs).
func classify(msg string) *Error {
	switch {
	case strings.Contains(msg, "invalid type"):
		return &Error{Code: teos.ErrCodeWrongFieldType, Message: msg}
	case strings.Contains(msg, "missing field"):
		msg, _, _ = strings.Cut(msg, " at")
		return &Error{Code: teos.ErrCodeMissingField, Message: msg}
	case strings.Contains(msg, "Odd number of digits"), strings.Contains(msg, "Invalid character"):
		return &Error{Code: teos.ErrCodeWrongFieldFormat, Message: msg}
	default:
		return &Error{Code: teos.ErrCodeInvalidRequestFormat, Message: msg}
	}
}
