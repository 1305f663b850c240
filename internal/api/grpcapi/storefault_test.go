package grpcapi

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
)

// Every error the core packages declare is an answer, never a fault of the store's own:
// storeFault holds anything it does not know for a fault, so an answer missing from its list
// would be held up to the bound and then answered 503. The test also reads the packages'
// sources, so a new error fails it until it is classified here (and in storeFault if it is an
// answer).
func TestDomainErrorsAreNotStoreFaults(t *testing.T) {
	answers := map[string]error{
		"gatekeeper.ErrAuthenticationFailed":  gatekeeper.ErrAuthenticationFailed,
		"gatekeeper.ErrMaxSlots":              gatekeeper.ErrMaxSlots,
		"gatekeeper.ErrNotEnoughSlots":        gatekeeper.ErrNotEnoughSlots,
		"gatekeeper.SubscriptionExpiredError": &gatekeeper.SubscriptionExpiredError{Expiry: 7},
		"gatekeeper.RegistrationRefusedError": &gatekeeper.RegistrationRefusedError{Message: "no"},
		"watcher.ErrAlreadyTriggered":         watcher.ErrAlreadyTriggered,
		"watcher.ErrNotFound":                 watcher.ErrNotFound,
		"watcher.ErrInvalidUserID":            watcher.ErrInvalidUserID,
		"watcher.ErrDeleteUnsupported":        watcher.ErrDeleteUnsupported,
		"store.ErrCorrupt":                    store.ErrCorrupt,
		"store.ErrNewerVersion":               store.ErrNewerVersion,
		"store.ErrUninitialized":              store.ErrUninitialized,
		// Turned into the watcher's answers before they leave the core (addError,
		// GetAppointment, DeleteAppointment).
		"store.ErrNotFound":     nil,
		"store.ErrUserNotFound": nil,
		"store.ErrTriggered":    nil,
		// A front end's own bucket name, fixed in code: a bug, never a request's answer.
		"store.ErrExtName": nil,
		// A fault of the store's own (a failed fsync): held like a full disk, then 503, until
		// teosd restarts; nothing more is written meanwhile.
		"store.ErrUnsynced": nil,
		// A write that reached a damaged page: the same, teosd stops. A read that reached one
		// also wraps ErrCorrupt, an answer (not held: the page will not heal by itself).
		"store.ErrDamaged": nil,
	}
	var declared []string
	for _, pkg := range []string{"gatekeeper", "watcher", "store"} {
		declared = append(declared, declaredErrors(t, "../../"+pkg, pkg)...)
	}
	for _, name := range declared {
		err, known := answers[name]
		if !known {
			t.Errorf("%s is not classified: add it to this test, and to storeFault if it reaches the API as an answer", name)
			continue
		}
		if err == nil {
			continue
		}
		for _, e := range []error{err, fmt.Errorf("wrapped: %w", err)} {
			if storeFault(e) {
				t.Errorf("storeFault(%v) = true: %s would be held and answered 503 instead of its answer", e, name)
			}
		}
	}
	for name := range answers {
		if !slices.Contains(declared, name) {
			t.Errorf("%s is no longer declared: drop it here", name)
		}
	}
}

// declaredErrors lists the exported Err* variables and *Error types of the package in dir.
func declaredErrors(t *testing.T, dir, pkg string) []string {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok {
					continue
				}
				for _, spec := range g.Specs {
					switch s := spec.(type) {
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if g.Tok == token.VAR && strings.HasPrefix(n.Name, "Err") && n.IsExported() {
								names = append(names, pkg+"."+n.Name)
							}
						}
					case *ast.TypeSpec:
						if s.Name.IsExported() && strings.HasSuffix(s.Name.Name, "Error") {
							names = append(names, pkg+"."+s.Name.Name)
						}
					}
				}
			}
		}
	}
	return names
}

// A write the store could not make on a damaged page is held (teosd stops, and a held add is
// answered 503 with error_code 7, which the CLN plugin keeps pending): it must not reach the
// client as a rejection of its appointment. A read that reached the damage is answered.
func TestDamagedStoreWriteIsAFault(t *testing.T) {
	write := fmt.Errorf("upsert: %w: assertion failed; writes are refused until teosd restarts", store.ErrDamaged)
	if !storeFault(write) {
		t.Errorf("storeFault(%v) = false: a damaged page would be answered as a refusal", write)
	}
	read := fmt.Errorf("load user: %w: %w: assertion failed", store.ErrCorrupt, store.ErrDamaged)
	if storeFault(read) {
		t.Errorf("storeFault(%v) = true: a read that will never succeed would be held", read)
	}
}
