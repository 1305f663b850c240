package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/chain"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/frontend"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/leader"
	"github.com/teos-go/teos/internal/metrics"
	"github.com/teos-go/teos/internal/responder"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
)

// chainRunner is what serve needs of the chain side: a *chain.Monitor, or the leader/follower
// switch of a tower whose instances share PostgreSQL.
type chainRunner interface {
	Run(ctx context.Context, every time.Duration) error
	Height() uint32
}

// openStore opens the engine cfg selects: the bbolt file in the network dir, or PostgreSQL
// when database_url is set.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Engine, error) {
	if cfg.DatabaseURL == "" {
		path := filepath.Join(cfg.NetworkDir(), "teos.db")
		st, err := store.Open(path, nil)
		if errors.Is(err, bolt.ErrTimeout) {
			// bbolt's own word is just "timeout": say which lock it waited for.
			return nil, fmt.Errorf("%s is locked by another process (is another teosd running with this data dir?)", path)
		}
		return st, err
	}
	if err := noBoltStoreBeside(cfg); err != nil {
		return nil, err
	}
	return pgstore.Open(ctx, cfg.DatabaseURL, &pgstore.Options{Network: cfg.BTCNetwork, Log: log})
}

// noBoltStoreBeside refuses database_url while the network dir holds a teos.db with data: a
// tower on PostgreSQL never reads it, so turning database_url on for a running tower would
// answer its users with another tower key (as with rust-teos's file, import.go).
func noBoltStoreBeside(cfg *config.Config) error {
	path := filepath.Join(cfg.NetworkDir(), storeFileName)
	if ok, err := exists(path); !ok || err != nil {
		return err
	}
	c, err := store.Inspect(path)
	if err != nil {
		return fmt.Errorf("database_url is set and %s is there: %w", path, err)
	}
	if c.Empty() {
		return nil
	}
	return fmt.Errorf("found %s (%d tower keys, %d users, %d appointments), but database_url is set and a tower on "+
		"PostgreSQL does not read it: it would answer those users with another tower key. Start without database_url "+
		"to keep that tower, or move the file away to start a new tower on PostgreSQL", path, c.TowerKeys, c.Users, c.Appointments)
}

// sharedTowerKey returns the tower key of a database shared by several instances: the stored
// one, or a new one stored atomically (instances starting together agree on it). ok is false
// for the bbolt engine.
func sharedTowerKey(db store.Engine) (key *btcec.PrivateKey, ok bool, err error) {
	pg, isPG := db.(*pgstore.Store)
	if !isPG {
		return nil, false, nil
	}
	fresh, err := btcec.NewPrivateKey()
	if err != nil {
		return nil, true, fmt.Errorf("generate tower key: %w", err)
	}
	var sk [32]byte
	fresh.Key.PutBytesUnchecked(sk[:])
	if sk, err = pg.EnsureTowerKey(sk); err != nil {
		return nil, true, err
	}
	key, _ = btcec.PrivKeyFromBytes(sk[:])
	return key, true, nil
}

// startShared runs an instance of a tower whose state is in PostgreSQL: it serves the public
// API and the admin RPC at once, and follows the chain (block processing, the responder, the
// hand-over queue) only while it holds the leadership; otherwise it tracks the chain tip for
// its receipts and locator cache.
func startShared(ctx context.Context, cfg *config.Config, log *slog.Logger, db *pgstore.Store, key *btcec.PrivateKey,
	btc *bitcoind.Client, rpcTLS *tls.Config, held grpcapi.Hold, pollNow chan struct{}, onion *onionService,
	met **metrics.Metrics) error {
	towerID := teos.UserIDFromPubKey(key.PubKey())
	_, height, err := startTip(ctx, cfg, db, btc, log)
	if err != nil {
		return err
	}
	gk := gatekeeper.New(gatekeeper.Config{
		Store:                db,
		SubscriptionSlots:    cfg.SubscriptionSlots,
		SubscriptionDuration: cfg.SubscriptionDuration,
		ExpiryDelta:          cfg.ExpiryDelta,
		Admission:            admission(cfg, db), // registration.go: read from the database on every registration
		Logger:               log,
	}, height)
	// Requests step aside while this instance processes a block: only while it leads, as
	// followers process none (roles.monitorConfig).
	blocksFirst := blockfirst.New(blockFirstBound)
	regs := registrationBudget(cfg) // regbudget.go: the public API's and the front ends'
	fes, err := openFrontEnds(ctx, cfg, db, key, btc, height, regs, blocksFirst, log)
	if err != nil {
		return err
	}
	if err := sharedFrontEnds(fes); err != nil {
		return err
	}
	resp := &swapResponder{}
	w := watcher.New(watcher.Config{Store: db, Gatekeeper: gk, Responder: resp, TowerKey: key, Logger: log, Wake: pollNow,
		BlocksFirst: blocksFirst})
	rc := &roles{cfg: cfg, log: log, db: db, btc: btc, gk: gk, w: w, resp: resp, fes: fes, blocks: blocksFirst, wake: pollNow}
	rc.el = leader.New(leader.Config{URL: cfg.DatabaseURL, Name: instanceName(cfg), Every: cfg.PollEvery(), Logger: log,
		NewTerm: pgstore.NewTerm, CanLead: rc.canLead(bitcoindAnswers(btc))})
	if cfg.MetricsBind != "" {
		m := rc.newMetrics(db.Counts, held)
		if err := registerFrontEndMetrics(m, fes); err != nil {
			return err
		}
		*met = m
	}
	log.Info("shared database: block processing runs on the instance holding the leadership")
	return serve(ctx, cfg, log, w, rc, db, towerID, rpcTLS, *met, held, blocksFirst, onion, fes, regs)
}

// sharedFrontEnds refuses a front end that cannot redo its block processing per leadership
// term, rather than run it on every instance.
func sharedFrontEnds(fes []*frontend.Instance) error {
	for _, fe := range fes {
		if fe.NewChain == nil {
			return fmt.Errorf("the %s front end does not support database_url (several instances sharing PostgreSQL)", fe.Name)
		}
	}
	return nil
}

// swapResponder hands breaches to the responder of the current leadership term; the watcher,
// which serves the API across terms, keeps this one.
type swapResponder struct {
	mu  sync.Mutex
	cur *responder.Responder
}

var errNotLeading = errors.New("this instance does not lead: no responder")

func (s *swapResponder) set(r *responder.Responder) {
	s.mu.Lock()
	s.cur = r
	s.mu.Unlock()
}

func (s *swapResponder) HandleBreach(ctx context.Context, id teos.UUID, dispute, penalty *wire.MsgTx) (*store.Tracker, error) {
	s.mu.Lock()
	r := s.cur
	s.mu.Unlock()
	if r == nil {
		return nil, errNotLeading
	}
	return r.HandleBreach(ctx, id, dispute, penalty)
}

// BlockInChain forwards to the current term's responder (the watcher asks it about a queued
// hand-over whose penalty was rejected); without one the entry stays queued, undecided.
func (s *swapResponder) BlockInChain(ctx context.Context, hash chainhash.Hash) (bool, error) {
	s.mu.Lock()
	r := s.cur
	s.mu.Unlock()
	if r == nil {
		return false, errNotLeading
	}
	return r.BlockInChain(ctx, hash)
}

// roles switches the instance between leading and following as the election goes.
type roles struct {
	cfg     *config.Config
	log     *slog.Logger
	db      *pgstore.Store
	btc     *bitcoind.Client
	gk      *gatekeeper.Gatekeeper
	w       *watcher.Watcher
	resp    *swapResponder
	el      *leader.Elector
	fes     []*frontend.Instance
	onBlock func(uint32, time.Duration)
	blocks  *blockfirst.Gate // raised by the leader's monitor only
	wake    chan struct{}    // the watcher's Wake: the leader's monitor polls and drains at once

	mu      sync.Mutex
	cur     *chain.Monitor
	leading atomic.Bool

	// leadFailedTerm is the leadership term whose start (lead) failed last, 0 once a start
	// succeeded: a failure counts only against the term it happened in.
	leadFailedTerm atomic.Int64
	benchedUntil   atomic.Int64 // r.sinceStart's reading in nanoseconds: no campaigning until then (canLead)
	// sinceStart is the monotonic clock the bench is measured on; nil: since processStart.
	sinceStart func() time.Duration
}

// processStart anchors monotonic measures: a time.Time from time.Now keeps its monotonic
// reading, so time.Since(processStart) ignores steps of the system clock (NTP), which a
// deadline in Unix time follows.
var processStart = time.Now()

func (r *roles) elapsed() time.Duration {
	if r.sinceStart != nil {
		return r.sinceStart()
	}
	return time.Since(processStart)
}

// benchedPeriods is how many election periods an instance that gave the leadership up because
// its block processing kept failing stays out of the election, so another instance takes it.
const benchedPeriods = 10

// canLead is the elector's CanLead: this instance's bitcoind answers (bitcoind) and, while it
// leads, its block processing is not failing for another reason (a write its store refuses,
// say): a leader failing so keeps the lock, and block processing stops for every instance.
// The elector gives the lock up once this says no for a few periods in a row; the instance
// then sits benchedPeriods out. A failure every instance shares moves the leadership round.
func (r *roles) canLead(bitcoind func(context.Context) bool) func(context.Context) bool {
	return func(ctx context.Context) bool {
		now := r.elapsed()
		if leading, _ := r.el.Leading(); leading {
			if r.blocksFailing() {
				r.benchedUntil.Store(int64(now + benchedPeriods*r.cfg.PollEvery()))
				r.log.Warn("block processing keeps failing: this instance cannot lead")
				return false
			}
			r.benchedUntil.Store(0) // it recovered before the elector gave the lock up
		} else if int64(now) < r.benchedUntil.Load() {
			return false
		}
		return bitcoind(ctx)
	}
}

// blocksFailing reports whether this instance's last leadership step failed: its last poll
// other than transiently, or the start of its current term. A start that failed in an earlier
// term does not count: a new term's start still running (loading recent blocks can take
// several periods) would be taken for a failing leader, given up and benched, over and over.
func (r *roles) blocksFailing() bool {
	if t := r.leadFailedTerm.Load(); t != 0 && t == r.el.Term() {
		return true
	}
	m := r.monitor()
	return r.leading.Load() && m != nil && m.Failures() > 0
}

func (r *roles) monitor() *chain.Monitor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Height is the chain height this instance has seen.
func (r *roles) Height() uint32 {
	if m := r.monitor(); m != nil {
		return m.Height()
	}
	return r.gk.Height()
}

// bitcoindAnswers is the elector's CanLead: an instance leads only while its own bitcoind
// answers, so the instance whose bitcoind is down hands block processing to one whose does.
// A JSON-RPC error is an answer; a timeout is not.
func bitcoindAnswers(btc *bitcoind.Client) func(ctx context.Context) bool {
	return func(ctx context.Context) bool {
		_, err := btc.BestBlockHash(ctx)
		return err == nil || (!bitcoind.IsUnreachable(err) && ctx.Err() == nil)
	}
}

// newMetrics builds the metrics of an instance sharing the database. bitcoind's and the
// database's reachability are two gauges: an operator paged for one must not chase the other.
func (r *roles) newMetrics(counts func() (users, appointments, trackers int, err error), held grpcapi.Hold) *metrics.Metrics {
	m := metrics.New(metrics.Config{Counts: counts, Height: r.Height, Reachable: r.btc.Reachable,
		Held: held.Gate.Held, AuthFailures: r.btc.AuthFailures, Endpoints: httpapi.Endpoints(), Logger: r.log})
	m.RegisterLeader(r.Leading)
	m.RegisterDatabase(r.el.DatabaseReachable)
	r.onBlock = func(_ uint32, took time.Duration) { m.ObserveBlock(took) }
	return m
}

// Leading reports whether this instance runs block processing.
func (r *roles) Leading() bool { return r.leading.Load() }

// Run campaigns and runs the role the election gives until ctx is done.
func (r *roles) Run(ctx context.Context, every time.Duration) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = r.el.Run(ctx) })
	for ctx.Err() == nil {
		leading, changed := r.el.Leading()
		rctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-changed:
			case <-rctx.Done():
			}
			cancel()
		}()
		var err error
		if leading {
			// The block path's writes commit only in this term: once another instance starts
			// a newer one, they are refused and the elector steps down (pgstore fence.go).
			term := r.el.Term()
			r.db.Fence(term, func() { r.el.StepDown(term) })
			err = r.lead(rctx, every)
			if err != nil && rctx.Err() == nil {
				r.leadFailedTerm.Store(term)
			}
		} else {
			r.db.Fence(0, nil)
			err = r.follow(rctx, every)
		}
		r.db.Fence(0, nil)
		r.leading.Store(false)
		r.resp.set(nil)
		if err != nil && rctx.Err() == nil {
			r.log.Warn("chain role failed, retrying", "leading", leading, "err", err)
			select {
			case <-rctx.Done():
			case <-time.After(every):
			}
		}
		cancel()
	}
	return nil
}

// tip is the persisted tip, where both roles start: the leader redoes what the last one may
// not have finished (block processing is idempotent).
func (r *roles) tip(ctx context.Context) (chainhash.Hash, uint32, error) {
	hash, height, ok, err := r.db.LastBlock()
	if err != nil {
		return hash, 0, err
	}
	if !ok {
		return startTip(ctx, r.cfg, r.db, r.btc, r.log)
	}
	return hash, height, nil
}

// lead processes blocks from the persisted tip on, with a fresh responder seeded like a
// restart's, and drains the hand-over queue every instance fills.
func (r *roles) lead(ctx context.Context, every time.Duration) error {
	hash, height, err := r.tip(ctx)
	if err != nil {
		return err
	}
	resp := responder.New(responder.Config{Store: r.db, Carrier: carrier.New(r.btc, r.log), Logger: r.log}, height)
	// The front ends' block processing (the lnd lookout and its responder) is the leader's too.
	// A block's transactions are published before the watcher looks it up, for the adds of
	// instances that have not seen it yet (pgstore mined.go).
	listeners := []chain.Listener{r.db.MinedTxs(watcher.CacheBlocks), r.gk, r.w, resp}
	var seeders []func(*frontend.SeedBlock)
	for _, fe := range r.fes {
		c := fe.NewChain(height)
		listeners = append(listeners, c.Listeners...)
		if c.Seed != nil {
			seeders = append(seeders, c.Seed)
		}
	}
	var first atomic.Bool
	gained := time.Now()
	mcfg := r.monitorConfig(true, listeners)
	mcfg.OnBlock = func(h uint32, took time.Duration) {
		if !first.Swap(true) {
			r.log.Info("first block processed as leader", "height", h, "since_leadership", time.Since(gained).Round(time.Millisecond))
		}
		if r.onBlock != nil {
			r.onBlock(h, took)
		}
	}
	mon, err := chain.New(ctx, mcfg, hash, height)
	if err != nil {
		return fmt.Errorf("load recent blocks: %w", err)
	}
	if err := seed(ctx, r.btc, mon, r.w, resp); err != nil {
		return err
	}
	if err := seedBlocks(ctx, r.btc, mon, seeders); err != nil {
		return err
	}
	// An instance that died right after acknowledging an appointment whose dispute the last
	// leader had already processed left it unqueued: look the recent blocks up again.
	if err := r.recheck(ctx, mon.Recent()); err != nil {
		return err
	}
	r.gk.SetHeight(height)
	r.resp.set(resp)
	r.mu.Lock()
	r.cur = mon
	r.mu.Unlock()
	r.leading.Store(true)
	r.leadFailedTerm.Store(0)
	r.log.Info("leading: following the chain from the persisted tip", "height", height)
	// Followers' late appointments wake the drain at their commit rather than at the next
	// poll; without the notifications (connection lost) the poll still drains.
	var wg sync.WaitGroup
	defer wg.Wait()
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	wg.Go(func() { r.db.ListenHandOvers(lctx, min(every, 5*time.Second), r.wakeChain, r.log) })
	return mon.Run(ctx, every)
}

// monitorConfig is the chain monitor's configuration for a leadership term (leading) or for a
// follower. Only the leader processes blocks, so only it raises the blocks-first gate, drains
// the hand-over queue and moves the persisted tip.
func (r *roles) monitorConfig(leading bool, listeners []chain.Listener) chain.Config {
	c := chain.Config{
		Source:      r.btc,
		Store:       noTip{},
		Listeners:   listeners,
		Logger:      r.log,
		IsTransient: bitcoind.IsUnreachable,
	}
	if leading {
		c.Store = r.db
		c.AfterPoll = r.w.HandOverQueued
		c.Wake = r.w.HandOversQueued()
		c.Busy = r.blocks
	}
	return c
}

// wakeChain makes the leader's monitor poll and drain the hand-over queue at once.
func (r *roles) wakeChain() {
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// follow tracks the chain for receipts and the locator cache, and writes nothing but the
// hand-overs its own adds may have missed (pgstore.Store.QueueMissed).
func (r *roles) follow(ctx context.Context, every time.Duration) error {
	hash, height, err := r.tip(ctx)
	if err != nil {
		return err
	}
	mon, err := chain.New(ctx, r.monitorConfig(false, []chain.Listener{&follower{r}}), hash, height)
	if err != nil {
		return fmt.Errorf("load recent blocks: %w", err)
	}
	if err := r.recheck(ctx, mon.Recent()); err != nil {
		return err
	}
	r.mu.Lock()
	r.cur = mon
	r.mu.Unlock()
	return mon.Run(ctx, every)
}

// recheck caches the newest CacheBlocks of recent in the watcher, in place of whatever the last
// term left there (a block it handled partly may have left the chain since), and queues the
// hand-overs their appointments may lack.
func (r *roles) recheck(ctx context.Context, recent []chain.BlockRef) error {
	r.w.ResetCache()
	for i := max(0, len(recent)-watcher.CacheBlocks); i < len(recent); i++ {
		block, err := r.btc.Block(ctx, recent[i].Hash)
		if err != nil {
			return fmt.Errorf("load block %s: %w", recent[i].Hash, err)
		}
		r.w.SeedBlock(block)
		if err := r.queueMissed(block, recent[i].Height); err != nil {
			return err
		}
	}
	return nil
}

// noTip keeps a follower from moving the persisted tip, which is the leader's.
type noTip struct{}

func (noTip) SetLastBlock(chainhash.Hash, uint32) error { return nil }

// follower is a follower's only block listener.
type follower struct{ r *roles }

func (f *follower) BlockConnected(ctx context.Context, block *wire.MsgBlock, height uint32) error {
	f.r.gk.SetHeight(height)
	f.r.w.SeedBlock(block)
	return f.r.queueMissed(block, height)
}

// queueMissed queues, for the leader, hand-overs for the appointments of block's disputes
// that have neither a tracker nor a queued hand-over (pgstore.Store.QueueMissed).
func (r *roles) queueMissed(block *wire.MsgBlock, height uint32) error {
	// Adds that looked at the cache before this block was in it have committed after this.
	if err := r.db.WaitWrites(); err != nil {
		return err
	}
	disputes := make(map[teos.Locator][]byte, len(block.Transactions))
	for _, tx := range block.Transactions {
		var buf bytes.Buffer
		if err := tx.Serialize(&buf); err != nil {
			return err
		}
		disputes[teos.NewLocator(tx.TxHash())] = buf.Bytes()
	}
	n, err := r.db.QueueMissed(block.BlockHash(), disputes)
	if err != nil {
		return err
	}
	if n > 0 {
		r.log.Info("queued hand-overs for the leader", "count", n, "height", height)
	}
	return nil
}

func (f *follower) BlockDisconnected(ctx context.Context, header *wire.BlockHeader, height uint32) error {
	f.r.gk.SetHeight(height - 1)
	return f.r.w.BlockDisconnected(ctx, header, height)
}
