package teos

// Error codes returned in the "error_code" field of the public HTTP API (teos-common errors.rs).
const (
	ErrCodeMissingField                        = 1
	ErrCodeEmptyField                          = 2
	ErrCodeWrongFieldType                      = 3
	ErrCodeWrongFieldSize                      = 4
	ErrCodeWrongFieldFormat                    = 5
	ErrCodeInvalidRequestFormat                = 6
	ErrCodeInvalidSignatureOrSubscriptionError = 7
	ErrCodeTooManyRequests                     = 8 // teos-go extension, no longer sent: the rate limit delays requests, then answers 503/32
	ErrCodeServiceUnavailable                  = 32
	ErrCodeAppointmentFieldTooSmall            = 33
	ErrCodeAppointmentFieldTooBig              = 34
	ErrCodeAppointmentAlreadyTriggered         = 35
	ErrCodeAppointmentNotFound                 = 36
	ErrCodeRegistrationResourceExhausted       = 65
	ErrCodeUnexpectedError                     = 255
)
