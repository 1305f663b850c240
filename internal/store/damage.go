package store

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is returned when bbolt failed on a page of the file: a read wraps it together
// with ErrCorrupt; a write wraps it alone, and every later write fails with it until the file
// is reopened.
var ErrDamaged = errors.New("store: the database file is damaged (check it with `bbolt check`, or restore a backup)")

// viewTx is db.View, and updateTx db.Update, turning a panic that a damaged file causes
// into an error (see damage): bbolt panics on a page that fails its checks, and reading a page
// id past the mapped file faults, which would otherwise end teosd with a stack trace.
func viewTx(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer catchDamage(&err, true)
	return db.View(fn)
}

func updateTx(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer catchDamage(&err, false)
	return db.Update(fn) // its own deferred rollback runs first
}

// catchDamage, deferred, recovers a panic raised by bbolt's own code or a memory fault (the
// mapped file is the only memory a transaction reaches unsafely) and sets *err to ErrDamaged,
// with ErrCorrupt for a read. Any other panic is a bug, not damage: it goes on, its stack intact.
func catchDamage(err *error, read bool) {
	r := recover()
	if r == nil {
		return
	}
	if !fromDamage(r) {
		panic(r)
	}
	if read {
		*err = fmt.Errorf("%w: %w: %v", ErrCorrupt, ErrDamaged, r)
	} else {
		*err = fmt.Errorf("%w: %v", ErrDamaged, r)
	}
}

// bboltMisuse are bbolt's assertions that catch its caller's mistakes, not damage.
var bboltMisuse = []string{"managed tx commit not allowed", "managed tx rollback not allowed", "tx closed"}

func fromDamage(r any) bool {
	if msg, ok := r.(string); ok && slices.ContainsFunc(bboltMisuse, func(m string) bool { return strings.Contains(msg, m) }) {
		return false
	}
	if re, ok := r.(runtime.Error); ok {
		_, fault := re.(interface{ Addr() uintptr }) // a fault past the nil page (SetPanicOnFault)
		return fault
	}
	// The deferred call still runs on the panicking stack: find the function that panicked.
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	afterPanic := false
	for {
		f, more := frames.Next()
		if afterPanic && !strings.HasPrefix(f.Function, "runtime.") {
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt.") || strings.HasPrefix(f.Function, "go.etcd.io/bbolt/")
		}
		afterPanic = afterPanic || f.Function == "runtime.gopanic"
		if !more {
			return false
		}
	}
}
