package store

import "errors"

var (
	// ErrNotFound is returned when the appointment or tracker asked for is not stored.
	ErrNotFound = errors.New("store: not found")

	// ErrUserNotFound is returned when an operation needs a user that is not registered.
	ErrUserNotFound = errors.New("store: user not found")

	// ErrCorrupt is returned when a stored record or key cannot be decoded, or when the
	// buckets disagree (an index entry without its record).
	ErrCorrupt = errors.New("store: corrupt record")

	// ErrNewerVersion is returned by Open when the file was written by a newer binary.
	ErrNewerVersion = errors.New("store: database version is newer than this binary")

	// ErrUninitialized is returned when a bucket that Open creates is missing.
	ErrUninitialized = errors.New("store: bucket missing, database not initialised")
)
