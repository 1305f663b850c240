package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/teos-go/teos/internal/store"
)

// teosd stops with the store's reason once the store refuses writes, and not before.
func TestStopWhenUnsynced(t *testing.T) {
	for _, cause := range []error{store.ErrUnsynced, fmt.Errorf("%w: assertion failed: page 30", store.ErrDamaged)} {
		unsynced := make(chan struct{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- stopWhenUnsynced(ctx, unsynced, func() error { return cause }) }()
		close(unsynced)
		if err := <-done; !errors.Is(err, cause) {
			t.Fatalf("after the store refused writes: %v, want %v", err, cause)
		}
		cancel()
		if err := stopWhenUnsynced(ctx, make(chan struct{}), func() error { return cause }); err != nil {
			t.Fatalf("on a normal stop: %v, want nil", err)
		}
	}
}
