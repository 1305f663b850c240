package inspector

import "github.com/teos-go/teos/pkg/teos"

// Error is a rejected request: Code is the teos error code the client gets in
// "error_code" and Message the text it gets in "error".
type Error struct {
	Code    int
	Message string
}

// Error returns the client-facing message.
func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, ErrXxx) compare codes, so callers can test the class of a
// failure without matching its text.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels for errors.Is, one per code the inspector produces. They carry no message.
var (
	// ErrMissingField: a required field is absent (or appointment is null).
	ErrMissingField = &Error{Code: teos.ErrCodeMissingField}
	// ErrEmptyField: user_id, locator or signature is empty.
	ErrEmptyField = &Error{Code: teos.ErrCodeEmptyField}
	// ErrWrongFieldType: a value of the wrong JSON type, or a body that is not an object.
	ErrWrongFieldType = &Error{Code: teos.ErrCodeWrongFieldType}
	// ErrWrongFieldSize: user_id is not 33 bytes or locator is not 16.
	ErrWrongFieldSize = &Error{Code: teos.ErrCodeWrongFieldSize}
	// ErrWrongFieldFormat: bad hex.
	ErrWrongFieldFormat = &Error{Code: teos.ErrCodeWrongFieldFormat}
	// ErrInvalidRequestFormat: any other malformed body (syntax, EOF, number out of range).
	ErrInvalidRequestFormat = &Error{Code: teos.ErrCodeInvalidRequestFormat}
)
