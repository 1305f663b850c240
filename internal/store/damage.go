package store

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is returned when bbolt failed on a page of the file: a read wraps it together
// with ErrCorrupt; a write wraps it alone, and every later write fails with it until the file
// is reopened.
var ErrDamaged = errors.New("store: the database file is damaged (check it with `bbolt check`, or restore a backup)")

// viewTx is db.View, and updateTx db.Update, turning a panic that a damaged file causes
// into an error (see damage): bbolt panics on a page that fails its checks, and reading a page
// id past the mapped file faults, which would otherwise end teosd with a stack trace. Once
// such a panic has left bbolt's locks held (wedged), they fail at once rather than wait.
func viewTx(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	if err := wedgedErr(db); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	var tx *bolt.Tx
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer catchDamage(db, &tx, &err, true)
	return db.View(func(t *bolt.Tx) error { tx = t; return fn(t) })
}

func updateTx(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	if err := wedgedErr(db); err != nil {
		return err
	}
	var tx *bolt.Tx
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer catchDamage(db, &tx, &err, false)
	return db.Update(func(t *bolt.Tx) error { tx = t; return fn(t) }) // its own deferred rollback runs first
}

// wedged holds, per *bolt.DB, the damage that left its locks held: a panic in Begin (reading
// the meta pages) or in the rollback after fn (reloading the freelist page) escapes before
// the transaction releases them, and every later transaction, and Close, would wait for good.
var wedged sync.Map

// wedgeNews is closed, and replaced, whenever damage wedges a *bolt.DB: a goroutine already
// waiting for the writer lock then never gets it, and a wait for that goroutine gives up.
var (
	wedgeMu   sync.Mutex
	wedgeNews = make(chan struct{})
)

func noteWedged(db *bolt.DB, err error) {
	if _, loaded := wedged.LoadOrStore(db, err); !loaded {
		wedgeMu.Lock()
		close(wedgeNews)
		wedgeNews = make(chan struct{})
		wedgeMu.Unlock()
	}
}

// waitUnlessWedged returns nil once done is closed, or db's wedge error once damage wedged it.
func waitUnlessWedged(db *bolt.DB, done <-chan struct{}) error {
	for {
		wedgeMu.Lock()
		news := wedgeNews // taken before the check: a wedge after it closes news
		wedgeMu.Unlock()
		if err := wedgedErr(db); err != nil {
			return err
		}
		select {
		case <-done:
			return nil
		case <-news:
		}
	}
}

func wedgedErr(db *bolt.DB) error {
	if err, ok := wedged.Load(db); ok {
		return err.(error)
	}
	return nil
}

// closeDB is db.Close, unless damage wedged db's locks: then the file stays open and locked
// until the process exits, where Close would hang.
func closeDB(db *bolt.DB) error {
	if err := wedgedErr(db); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return db.Close()
}

// catchDamage, deferred, recovers a panic raised by bbolt's own code or a memory fault (the
// mapped file is the only memory a transaction reaches unsafely) and sets *err to ErrDamaged,
// with ErrCorrupt for a read. Any other panic is a bug, not damage: it goes on, its stack intact.
// *tx is the transaction fn was given (nil if none): not closed, it still holds bbolt's locks.
func catchDamage(db *bolt.DB, tx **bolt.Tx, err *error, read bool) {
	r := recover()
	if r == nil {
		return
	}
	if !fromDamage(r) {
		panic(r)
	}
	if *tx == nil || (*tx).DB() != nil {
		noteWedged(db, fmt.Errorf("%w: %v; bbolt's locks are left held, the file is released when teosd exits", ErrDamaged, r))
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
