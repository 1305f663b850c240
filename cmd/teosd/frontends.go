package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/chain"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/frontend"
	"github.com/teos-go/teos/internal/metrics"
	"github.com/teos-go/teos/internal/store"
)

// frontEndKeys maps the registered front ends' names to the setting that turns each on, so a
// teosd built without one refuses a configuration that asks for it.
var frontEndKeys = map[string]func(*config.Config) (key string, on bool){
	"lnd": func(c *config.Config) (string, bool) { return "lnd_tower_bind", c.LndTowerBind != "" },
}

// openFrontEnds opens the extra front ends compiled into this binary (see internal/frontend)
// that cfg turns on. Their chain listeners run after teosd's own; their requests wait at
// blocks, the gate the public API's requests wait at.
func openFrontEnds(ctx context.Context, cfg *config.Config, db store.Engine, key *btcec.PrivateKey,
	btc *bitcoind.Client, height uint32, regs *httpapi.RegistrationLimit, blocks *blockfirst.Gate, log *slog.Logger) ([]*frontend.Instance, error) {
	cfg = fitFrontEndConns(cfg, fdLimit(), log) // fdbudget.go
	for name, on := range frontEndKeys {
		if k, want := on(cfg); want {
			if _, ok := frontend.Get(name); !ok {
				return nil, fmt.Errorf("%s is set, but this teosd was built without the %s front end (build the teosd of the repository's %s/ module)", k, name, name)
			}
		}
	}
	var out []*frontend.Instance
	for _, name := range frontend.Names() {
		fe, _ := frontend.Get(name)
		if !fe.Enabled(cfg) {
			continue
		}
		flog := log.With("front_end", name)
		inst, err := fe.Open(ctx, frontend.Env{
			Config: cfg, Store: db, TowerKey: key, Carrier: carrier.New(btc, flog), Height: height, Logger: flog,
			Registrations: sharedBudget(regs), BlocksFirst: blocks,
		})
		if err != nil {
			return nil, fmt.Errorf("open %s front end: %w", name, err)
		}
		inst.Name = name
		out = append(out, inst)
	}
	return out, nil
}

func frontEndListeners(fes []*frontend.Instance) []chain.Listener {
	var ls []chain.Listener
	for _, fe := range fes {
		ls = append(ls, fe.Listeners...)
	}
	return ls
}

// seedFrontEnds gives the front ends the recent blocks teosd's responder was seeded with.
func seedFrontEnds(ctx context.Context, btc *bitcoind.Client, mon *chain.Monitor, fes []*frontend.Instance) error {
	var seeders []func(*frontend.SeedBlock)
	for _, fe := range fes {
		if fe.Seed != nil {
			seeders = append(seeders, fe.Seed)
		}
	}
	return seedBlocks(ctx, btc, mon, seeders)
}

// seedBlocks gives seeders the monitor's recent blocks, oldest first.
func seedBlocks(ctx context.Context, btc *bitcoind.Client, mon *chain.Monitor, seeders []func(*frontend.SeedBlock)) error {
	if len(seeders) == 0 {
		return nil
	}
	for _, l := range mon.Recent() {
		block, err := btc.Block(ctx, l.Hash)
		if err != nil {
			return fmt.Errorf("load block %s: %w", l.Hash, err)
		}
		for _, seed := range seeders {
			seed(&frontend.SeedBlock{Block: block, Height: l.Height})
		}
	}
	return nil
}

// registerFrontEndMetrics adds the front ends' metrics to the tower's registry.
func registerFrontEndMetrics(met *metrics.Metrics, fes []*frontend.Instance) error {
	for _, fe := range fes {
		if err := met.Register(fe.Collectors...); err != nil {
			return fmt.Errorf("register front end metrics: %w", err)
		}
	}
	return nil
}
