// Package lndtower is teosd's front end for lnd's built-in watchtower client: a brontide
// (Noise_XK) listener authenticated with the tower key, lnd's own tower server (wtserver) for
// Init, CreateSession, StateUpdate and DeleteSession with its reply codes, sessions and
// updates kept in the tower's store (bbolt or PostgreSQL), and a lookout that turns a breach into lnd's justice
// transaction and hands it to a responder like any penalty. Importing it registers the front
// end; lnd_tower_bind turns it on.
package lndtower

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/watchtower/wtserver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/api/limits"
	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/chain"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/frontend"
	"github.com/teos-go/teos/internal/responder"
)

// lnd's tower defaults (watchtower.DefaultReadTimeout/DefaultWriteTimeout).
const (
	readTimeout  = 15 * time.Second
	writeTimeout = 15 * time.Second
)

func init() { frontend.Register("lnd", frontEnd{}) }

type frontEnd struct{}

func (frontEnd) Enabled(cfg *config.Config) bool { return cfg.LndTowerBind != "" }

func (frontEnd) Open(_ context.Context, env frontend.Env) (*frontend.Instance, error) {
	hash, err := ChainHash(env.Config.BitcoindNetwork())
	if err != nil {
		return nil, err
	}
	if env.Config.Debug || env.Config.DepsDebug {
		useLNDLogs(env.Config.DepsDebug)
	}
	db := NewDB(env.Store, env.Logger)
	justiceTxs := new(atomic.Uint64) // handed to the responder since start
	// One responder and lookout per leadership term on a shared database; one in all here.
	newChain := func(height uint32) frontend.Chain {
		resp := responder.New(responder.Config{Store: db, Carrier: env.Carrier, Logger: env.Logger}, height)
		look := NewLookout(db, resp, env.Logger)
		look.onJustice = func() { justiceTxs.Add(1) }
		return frontend.Chain{
			Listeners: []chain.Listener{look, resp},
			Seed:      func(b *frontend.SeedBlock) { resp.SeedBlock(b.Block, b.Height) },
		}
	}
	srv := &Server{
		Bind: env.Config.LndTowerBind, Key: &keychain.PrivKeyECDH{PrivKey: env.TowerKey},
		ChainHash: hash, DB: db, Logger: env.Logger,
	}
	srv.applyCaps(env.Config, env.Store)
	srv.Registrations = env.Registrations // one budget per address with the public API's
	srv.BlocksFirst = env.BlocksFirst     // one gate with the public API's
	c := newChain(env.Height)
	inf := newInfo(srv, db, justiceTxs)
	return &frontend.Instance{
		Listeners:  c.Listeners,
		Serve:      srv.Serve,
		Seed:       c.Seed,
		Collectors: append(collectors(db, justiceTxs, 0), srv.Collectors()...),
		NewChain:   newChain,
		Info:       inf,
	}, nil
}

// ChainHash is the genesis hash lnd clients expect in the tower's Init for a bitcoind
// network name (main, test, regtest, signet).
func ChainHash(network string) (chainhash.Hash, error) {
	switch network {
	case "main":
		return *chaincfg.MainNetParams.GenesisHash, nil
	case "test":
		return *chaincfg.TestNet3Params.GenesisHash, nil
	case "regtest":
		return *chaincfg.RegressionNetParams.GenesisHash, nil
	case "signet":
		return *chaincfg.SigNetParams.GenesisHash, nil
	}
	return chainhash.Hash{}, fmt.Errorf("lnd front end: unknown network %q", network)
}

// Server serves lnd's watchtower clients on a brontide listener.
type Server struct {
	Bind      string
	Key       keychain.SingleKeyECDH
	ChainHash chainhash.Hash
	DB        *DB
	Logger    *slog.Logger
	// Ready, if set, is called with the bound address once the listener is open.
	Ready func(addr net.Addr)

	// The operator's caps (teos-go's; caps.go). Zero values cap nothing.
	// MaxConnections bounds the connections open at once, handshakes included: past it the
	// listener stops accepting and clients wait in the kernel's queue.
	// MaxConnectionsPerAddress bounds those of one address (an IPv6 /64): past it a new
	// connection is closed at once, before any handshake work.
	MaxConnections, MaxConnectionsPerAddress int
	// HandshakeTimeout bounds brontide's three acts (0: DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// MaxStoredBytes > 0 refuses new sessions once StoredBytes reaches it.
	MaxStoredBytes int64
	StoredBytes    func() (int64, error)
	// SessionsPerMinute > 0 limits the new sessions of one client address, with a budget of
	// the port's own unless Registrations is set.
	SessionsPerMinute uint32
	clock             func() time.Time // the session rate's clock; nil: time.Now
	// Registrations, if set, is the budget new sessions spend in place of SessionsPerMinute's:
	// teosd's registration_rate budget, which the public API's registrations spend too.
	Registrations frontend.RegistrationBudget
	// BlocksFirst, if set, is waited at by CreateSession, StateUpdate and DeleteSession before
	// wtserver's store work on them while a block is processed (listener.go, waitsForBlocks).
	BlocksFirst *blockfirst.Gate

	met         *portMetrics  // made by the first of Collectors and Serve
	readTimeout time.Duration // wtserver's per message; 0: readTimeout (lnd's)
}

// Collectors are the port's metrics (portmetrics.go): connections, handshakes, sessions and
// updates answered. They read zero until Serve runs. Call it before Serve, not during.
func (s *Server) Collectors() []prometheus.Collector { return s.metrics().collectors() }

func (s *Server) metrics() *portMetrics {
	if s.met == nil {
		s.met = newPortMetrics()
	}
	return s.met
}

// errNoReward is what a reward session would ask for; reward sessions are refused before it.
var errNoReward = errors.New("reward sessions are not offered")

// Serve listens on Bind and serves until ctx is done; then it closes the listener and every
// client connection and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tcp, err := net.Listen("tcp", s.Bind)
	if err != nil {
		return fmt.Errorf("listen lnd tower (lnd_tower_bind) on %s: %w", s.Bind, err)
	}
	capped := limits.NewListener(tcp, limits.ListenerConfig{Max: s.MaxConnections, MaxPerAddress: s.MaxConnectionsPerAddress})
	met := s.metrics()
	met.lis.Store(capped)
	met.max.Store(int64(max(s.MaxConnections, 0)))
	l := newListener(capped, s.Key, s.HandshakeTimeout, log, met)
	l.blocks = s.BlocksFirst
	var db wtserver.DB = s.DB
	caps := sessionCaps{MaxStoredBytes: s.MaxStoredBytes, StoredBytes: s.StoredBytes, Rate: s.Registrations, addrOf: l.addrOf}
	if caps.Rate == nil {
		if own := httpapi.NewRegistrationLimit(s.SessionsPerMinute, s.clock); own != nil {
			caps.Rate = own
		}
	}
	if caps.any() {
		db = &cappedDB{DB: s.DB, caps: caps, log: log}
	}
	db = observedDB{DB: db, m: met}
	srv, err := wtserver.New(&wtserver.Config{
		DB:           db,
		NodeKeyECDH:  s.Key,
		Listeners:    []net.Listener{l},
		ReadTimeout:  cmp.Or(s.readTimeout, readTimeout),
		WriteTimeout: writeTimeout,
		ChainHash:    s.ChainHash,
		// As lnd's own tower: altruist sessions only (legacy and anchor channels).
		DisableReward: true,
		NewAddress:    func() (btcutil.Address, error) { return nil, errNoReward },
	})
	if err != nil {
		l.Close()
		return fmt.Errorf("lnd tower server: %w", err)
	}
	if err := srv.Start(); err != nil {
		l.Close()
		return fmt.Errorf("start lnd tower server: %w", err)
	}
	log.Info("lnd tower ready", "lnd_tower", l.Addr().String(), "pubkey", fmt.Sprintf("%x", s.Key.PubKey().SerializeCompressed()),
		"max_connections", s.MaxConnections, "max_connections_per_address", s.MaxConnectionsPerAddress)
	if s.Ready != nil {
		s.Ready(l.Addr())
	}
	<-ctx.Done()
	return srv.Stop() // closes the listener too
}

// useLNDLogs sends the logs of lnd's tower server (and, with --depsdebug, at debug level) to
// stderr in lnd's format.
func useLNDLogs(debug bool) {
	h := btclog.NewDefaultHandler(os.Stderr)
	l := btclog.NewSLogger(h.SubSystem("WTWR"))
	if debug {
		l.SetLevel(btclog.LevelDebug)
	} else {
		l.SetLevel(btclog.LevelInfo)
	}
	wtserver.UseLogger(l)
}
