package main

import (
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/frontend"
)

// A front end that cannot redo its block processing per leadership term is refused on a
// shared database, by name; one that can is accepted.
func TestSharedFrontEnds(t *testing.T) {
	ok := &frontend.Instance{Name: "lnd", NewChain: func(uint32) frontend.Chain { return frontend.Chain{} }}
	if err := sharedFrontEnds([]*frontend.Instance{ok}); err != nil {
		t.Fatalf("refused a front end with NewChain: %v", err)
	}
	err := sharedFrontEnds([]*frontend.Instance{ok, {Name: "other"}})
	if err == nil || !strings.Contains(err.Error(), "other front end does not support database_url") {
		t.Fatalf("sharedFrontEnds = %v", err)
	}
}
