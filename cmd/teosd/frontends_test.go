package main

import (
	"context"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/config"
)

// The plain teosd has no lnd front end compiled in: it refuses lnd_tower_bind instead of
// silently not serving it.
func TestFrontEndNotCompiledIn(t *testing.T) {
	cfg := config.Default()
	cfg.LndTowerBind = "127.0.0.1:9911"
	_, err := openFrontEnds(context.Background(), &cfg, nil, nil, nil, 0, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "lnd_tower_bind") {
		t.Fatalf("err = %v, want a refusal naming lnd_tower_bind", err)
	}
	cfg.LndTowerBind = ""
	fes, err := openFrontEnds(context.Background(), &cfg, nil, nil, nil, 0, nil, nil)
	if err != nil || len(fes) != 0 {
		t.Fatalf("no front end asked for: %d, %v", len(fes), err)
	}
}
