package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/frontend"
)

// The plain teosd has no lnd front end compiled in: it refuses lnd_tower_bind instead of
// silently not serving it.
func TestFrontEndNotCompiledIn(t *testing.T) {
	cfg := config.Default()
	cfg.LndTowerBind = "127.0.0.1:9911"
	_, err := openFrontEnds(context.Background(), &cfg, nil, nil, nil, 0, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "lnd_tower_bind") {
		t.Fatalf("err = %v, want a refusal naming lnd_tower_bind", err)
	}
	cfg.LndTowerBind = ""
	fes, err := openFrontEnds(context.Background(), &cfg, nil, nil, nil, 0, nil, nil, nil)
	if err != nil || len(fes) != 0 {
		t.Fatalf("no front end asked for: %d, %v", len(fes), err)
	}
}

// envProbe is a front end that records the Env it is opened with, while on.
type envProbe struct {
	on  atomic.Bool
	got *frontend.Env
}

func (p *envProbe) Enabled(*config.Config) bool { return p.on.Load() }

func (p *envProbe) Open(_ context.Context, env frontend.Env) (*frontend.Instance, error) {
	p.got = &env
	return &frontend.Instance{}, nil
}

var probeOnce sync.Once
var probe = &envProbe{}

// A front end gets the blocks-first gate teosd's chain monitor raises (both start paths pass
// theirs to openFrontEnds), so its requests step aside for a block as the public API's do.
func TestFrontEndsGetTheBlocksFirstGate(t *testing.T) {
	probeOnce.Do(func() { frontend.Register("zz-env-probe", probe) })
	probe.on.Store(true)
	t.Cleanup(func() { probe.on.Store(false) })
	cfg := config.Default()
	gate := blockfirst.New(blockFirstBound)
	fes, err := openFrontEnds(context.Background(), &cfg, nil, nil, nil, 0, nil, gate, slog.New(slog.DiscardHandler))
	if err != nil || len(fes) != 1 {
		t.Fatalf("openFrontEnds: %d front ends, %v", len(fes), err)
	}
	if probe.got == nil || probe.got.BlocksFirst != gate {
		t.Fatalf("the front end was not handed teosd's blocks-first gate (env %+v)", probe.got)
	}
}
