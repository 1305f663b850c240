// Package frontend lets a teosd variant add a tower front end that speaks another client
// protocol (the lnd/ module adds lnd's watchtower protocol) without the main module depending
// on it: the variant's package registers itself, and cmd/teosd opens every registered front end
// its configuration turns on. They share the tower key, the chain monitor and the store.
package frontend

import (
	"context"
	"log/slog"
	"sort"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/wire"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/chain"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/responder"
	"github.com/teos-go/teos/internal/store"
)

// Env is what teosd hands a front end when it opens it.
type Env struct {
	Config *config.Config
	// Store is the tower's store, either engine; a front end keeps its records in it.
	Store    store.Engine
	TowerKey *btcec.PrivateKey
	// Carrier broadcasts for the front end's own responder (a carrier.Carrier of its own).
	Carrier responder.Carrier
	// Height is the last block the tower processed.
	Height uint32
	Logger *slog.Logger
	// Registrations, if set, is registration_rate's budget per client address, the one the
	// public API's registrations spend: a front end's registrations spend it too, so one
	// address gets one budget across the tower's ports.
	Registrations RegistrationBudget
	// BlocksFirst is the gate the chain monitor raises while it processes a block, the one the
	// public API's requests wait at: a front end's requests wait at it too before their CPU and
	// store work, so a block goes first whichever port the load comes in on. Nil never waits.
	BlocksFirst *blockfirst.Gate
}

// RegistrationBudget is a per-address budget of registrations (addresses as
// clientaddr.Client.Key names them: an IPv6 address by its /64).
type RegistrationBudget interface {
	// Take spends one of addr's registrations; false if none is left.
	Take(addr string) bool
	// GiveBack returns one taken for a registration that granted nothing.
	GiveBack(addr string)
}

// SeedBlock is one of the recent blocks up to the tip, given at start-up, oldest first.
type SeedBlock struct {
	Block  *wire.MsgBlock
	Height uint32
}

// Instance is an opened front end.
type Instance struct {
	// Name is the name it is registered under (set by teosd).
	Name string
	// Listeners join the chain monitor's, after teosd's own, in this order.
	Listeners []chain.Listener
	// Serve opens the front end's ports and serves until ctx is done; it returns nil then.
	// teosd calls it once the tower has caught up with the chain.
	Serve func(ctx context.Context) error
	// Seed, if set, is given the recent blocks before the first poll (a responder's SeedBlock).
	Seed func(*SeedBlock)
	// Collectors join the metrics endpoint's registry when metrics_bind is set.
	Collectors []prometheus.Collector
	// NewChain, if set, makes the front end's block processing afresh, from the block at
	// height: an instance of a tower sharing PostgreSQL calls it each time it gains the
	// leadership (and uses neither Listeners nor Seed). A front end without it cannot run
	// on a shared database.
	NewChain func(height uint32) Chain
	// Info, if set, tells the operator (get_tower_info) where clients reach the front end and
	// what it holds; it is called per request, so it must be cheap.
	Info func() (Info, error)
}

// Chain is a front end's part of block processing for one leadership term.
type Chain struct {
	Listeners []chain.Listener
	Seed      func(*SeedBlock)
}

// Info is a front end's state for the operator.
type Info struct {
	// Addresses as the front end's clients write them ("<tower_id>@host:port" for lnd).
	Addresses []string
	// Sessions and StateUpdates stored; JusticeTxs handed to the responder since start.
	Sessions, StateUpdates, JusticeTxs uint64
}

// FrontEnd is a front end a variant compiles in.
type FrontEnd interface {
	// Enabled reports whether cfg turns the front end on.
	Enabled(cfg *config.Config) bool
	// Open prepares the front end; nothing is listening yet.
	Open(ctx context.Context, env Env) (*Instance, error)
}

var (
	mu       sync.Mutex
	registry = map[string]FrontEnd{}
)

// Register adds a front end under name; a second registration of a name replaces the first.
func Register(name string, f FrontEnd) {
	mu.Lock()
	defer mu.Unlock()
	registry[name] = f
}

// Get returns the front end registered under name.
func Get(name string) (FrontEnd, bool) {
	mu.Lock()
	defer mu.Unlock()
	f, ok := registry[name]
	return f, ok
}

// Names lists the registered front ends, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
