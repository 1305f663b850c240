package client

import (
	"errors"
	"fmt"
)

// ErrMisbehaving is wrapped by the error returned when a tower's answer fails verification: a
// receipt not signed by the tower id, or a registration that does not extend the previous one.
// The tower is marked (Tower.Misbehaving) and refuses further Register and AddAppointment calls.
var ErrMisbehaving = errors.New("tower misbehaving")

// ErrBadResponse is wrapped when a tower answers 200 with a body that cannot be decoded.
var ErrBadResponse = errors.New("malformed tower response")

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
