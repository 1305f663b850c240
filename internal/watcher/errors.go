package watcher

import "errors"

var (
	// ErrAlreadyTriggered means a tracker already exists for the appointment's UUID.
	ErrAlreadyTriggered = errors.New("the provided appointment has already been triggered")
	// ErrNotFound means the user has no appointment or tracker for the locator.
	ErrNotFound = errors.New("appointment not found")
	// ErrInvalidUserID means a registration key is not a compressed public key on the curve.
	ErrInvalidUserID = errors.New("invalid user id")
	// ErrDeleteUnsupported means the tower's store cannot delete appointments (the PostgreSQL
	// engine): delete_appointment is not served (CanDelete).
	ErrDeleteUnsupported = errors.New("this tower does not serve delete_appointment")
)
