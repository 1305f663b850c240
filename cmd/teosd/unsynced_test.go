package main

import (
	"context"
	"errors"
	"testing"

	"github.com/teos-go/teos/internal/store"
)

// teosd stops with store.ErrUnsynced once the store refuses writes, and not before.
func TestStopWhenUnsynced(t *testing.T) {
	unsynced := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- stopWhenUnsynced(ctx, unsynced) }()
	close(unsynced)
	if err := <-done; !errors.Is(err, store.ErrUnsynced) {
		t.Fatalf("after the store became unsynced: %v, want ErrUnsynced", err)
	}
	cancel()
	if err := stopWhenUnsynced(ctx, make(chan struct{})); err != nil {
		t.Fatalf("on a normal stop: %v, want nil", err)
	}
}
