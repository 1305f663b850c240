// Package chain follows bitcoind's best chain by polling, walks reorgs back to the fork point
// with raw headers, and delivers block events to listeners in a fixed order.
package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

// Window is how many recent blocks the monitor remembers to find fork points; a reorg deeper
// than this is followed by loading older headers from bitcoind.
const Window = 100

// ErrBehind is in Poll's error when bitcoind's best block is below every block the monitor
// remembers: nothing is disconnected, and a later poll follows bitcoind once it is back up.
var ErrBehind = errors.New("bitcoind is behind the tower")

// catchUpReport is the backlog above which Poll reports its progress.
const catchUpReport = 10

// BlockSource is the part of bitcoind the monitor reads.
type BlockSource interface {
	BestBlockHash(ctx context.Context) (chainhash.Hash, error)
	BlockHeader(ctx context.Context, hash chainhash.Hash) (*wire.BlockHeader, error)
	Block(ctx context.Context, hash chainhash.Hash) (*wire.MsgBlock, error)
	// BlockHeight is the height of a block of the best chain.
	BlockHeight(ctx context.Context, hash chainhash.Hash) (uint32, error)
}

// Listener receives block events. Listeners are called one at a time, in the order given.
type Listener interface {
	BlockConnected(ctx context.Context, block *wire.MsgBlock, height uint32) error
	BlockDisconnected(ctx context.Context, header *wire.BlockHeader, height uint32) error
}

// TipStore persists the last processed block.
type TipStore interface {
	SetLastBlock(hash chainhash.Hash, height uint32) error
}

// Config wires a monitor.
type Config struct {
	Source    BlockSource
	Store     TipStore
	Listeners []Listener
	Logger    *slog.Logger
	// IsTransient tells a connection failure (bitcoind unreachable) from other errors. nil
	// means an error with an Unreachable() bool method that returns true (as bitcoind's).
	IsTransient func(error) bool
	// OnBlock, if set, is called after a block is connected and persisted, with how long that
	// took from the block fetch on. It runs on the polling goroutine, so it must be quick.
	OnBlock func(height uint32, took time.Duration)
	// AfterPoll, if set, is called by Run after every successful Poll, on the polling
	// goroutine, for work that must not wait for a new block; an error is handled as a
	// failed poll.
	AfterPoll func(ctx context.Context) error
	// Wake, if set, makes Run poll at once when it receives, instead of at the next tick.
	Wake <-chan struct{}
	// Busy, if set, is told when a poll found a new best block (Begin) and when it is done
	// with it (End), so requests can step aside while blocks are processed.
	Busy interface {
		Begin()
		End()
	}
}

// BlockRef names a block of the processed chain.
type BlockRef struct {
	Hash   chainhash.Hash
	Height uint32
}

// Monitor tracks the chain tip the tower has processed.
type Monitor struct {
	cfg      Config
	log      *slog.Logger
	mu       sync.Mutex // serialises Poll; guards chain
	chain    []BlockRef // last Window processed blocks (more during a deeper reorg), oldest first
	height   atomic.Uint32
	lastMove atomic.Int64 // m.elapsed() in nanoseconds when the tip last moved
	// sinceStart is the monotonic clock the stale-tip warning is measured on; nil: since
	// processStart.
	sinceStart func() time.Duration
	failures   atomic.Int64 // Run's polls in a row that failed other than transiently
	// partial is a block some listeners handled but not all (one failed); guarded by mu. If
	// it leaves the best chain before it is retried, its listeners are told it is gone.
	partial *partialBlock
	// undone is the tip some listeners were told was disconnected but not all (one failed);
	// guarded by mu. If it is back on the best chain at the next poll, those listeners are
	// told it is connected again.
	undone *undoneBlock
}

type undoneBlock struct {
	ref  BlockRef
	upTo int // listeners[0..upTo] handled (or may have half handled) the disconnection
}

type partialBlock struct {
	header wire.BlockHeader
	height uint32
}

// New returns a monitor whose processed tip is (tip, height). It loads the Window blocks below
// the tip with raw headers, which also works when tip has been reorganised away.
func New(ctx context.Context, cfg Config, tip chainhash.Hash, height uint32) (*Monitor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IsTransient == nil {
		cfg.IsTransient = isUnreachable
	}
	m := &Monitor{cfg: cfg, log: cfg.Logger.With("component", "chain")}
	chain := []BlockRef{{tip, height}}
	hash := tip
	for h := height; h > 0 && len(chain) < Window; h-- {
		hdr, err := cfg.Source.BlockHeader(ctx, hash)
		if err != nil {
			return nil, fmt.Errorf("load header %s: %w", hash, err)
		}
		hash = hdr.PrevBlock
		chain = append(chain, BlockRef{hash, h - 1})
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	m.chain = chain
	m.height.Store(height)
	m.lastMove.Store(int64(m.elapsed()))
	return m, nil
}

// processStart anchors monotonic measures: a time.Time from time.Now keeps its monotonic
// reading, so time.Since(processStart) ignores steps of the system clock (NTP), which Unix
// time follows.
var processStart = time.Now()

func (m *Monitor) elapsed() time.Duration {
	if m.sinceStart != nil {
		return m.sinceStart()
	}
	return time.Since(processStart)
}

// Failures is how many of Run's polls in a row failed for a reason other than a transient
// one (IsTransient): a block whose processing keeps failing.
func (m *Monitor) Failures() int64 { return m.failures.Load() }

// Height is the height of the last processed block.
func (m *Monitor) Height() uint32 { return m.height.Load() }

// Tip is the last processed block.
func (m *Monitor) Tip() (chainhash.Hash, uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.chain[len(m.chain)-1]
	return l.Hash, l.Height
}

// Recent returns the processed blocks the monitor remembers (up to Window), oldest first.
func (m *Monitor) Recent() []BlockRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]BlockRef(nil), m.chain...)
}

// Poll brings the processed tip up to bitcoind's best block: it disconnects blocks that left the
// best chain (tip first) and connects the new ones in order. A block becomes the tip only
// after every listener has handled it, so a failure resumes at the same block; the tip is
// persisted at the end of the poll, on failure, and once a second during a long catch-up.
func (m *Monitor) Poll(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.trim()
	best, err := m.cfg.Source.BestBlockHash(ctx)
	if err != nil {
		return fmt.Errorf("get best block hash: %w", err)
	}
	if best == m.chain[len(m.chain)-1].Hash {
		if err := m.redoUndone(ctx); err != nil {
			return err
		}
		return m.unwindPartial(ctx, nil)
	}
	if m.cfg.Busy != nil {
		m.cfg.Busy.Begin()
		defer m.cfg.Busy.End()
	}
	bestHeight, err := m.cfg.Source.BlockHeight(ctx, best)
	if err != nil {
		return fmt.Errorf("get height of %s: %w", best, err)
	}
	if bestHeight < m.chain[0].Height {
		// Most likely a reindex or a node still syncing, not a fork: say so, as this is
		// logged on every poll until bitcoind catches up.
		return fmt.Errorf("bitcoind's best block %s is at height %d, below the last %d blocks the tower processed (%d to %d): "+
			"%w (reindexing, or still syncing?) or on a fork deeper than that; waiting for it",
			best, bestHeight, len(m.chain), m.chain[0].Height, m.chain[len(m.chain)-1].Height, ErrBehind)
	}
	// Walk back from the new best block until a block we processed. However many blocks were
	// missed, the walk ends there. A fork below the oldest block remembered (deeper than
	// Window) is followed too, as rust-teos's block sync does: the processed chain is loaded
	// further down with raw headers, which bitcoind still serves for blocks that left its best
	// chain. Refusing it would leave the tower stuck at its tip for good, and unable to start.
	var branch []chainhash.Hash // newest first
	fork := -1
	for hash := best; fork < 0; {
		height := int64(bestHeight) - int64(len(branch)) // of hash
		if below := int64(m.chain[0].Height) - height; below > 0 {
			if err := m.loadOlder(ctx, best, max(below, int64(len(m.chain)))); err != nil {
				return err
			}
		}
		if i := m.indexOf(hash, height); i >= 0 {
			fork = i
			break
		}
		hdr, err := m.cfg.Source.BlockHeader(ctx, hash)
		if err != nil {
			return fmt.Errorf("get header %s: %w", hash, err)
		}
		branch = append(branch, hash)
		hash = hdr.PrevBlock
	}
	if err := m.unwindPartial(ctx, branch); err != nil {
		return err
	}
	if fork == len(m.chain)-1 {
		if err := m.redoUndone(ctx); err != nil {
			return err
		}
	}
	for len(m.chain)-1 > fork {
		top := m.chain[len(m.chain)-1]
		if err := m.disconnect(ctx, top); err != nil {
			return err
		}
	}
	progress, persisted := time.Now(), time.Now()
	for i := len(branch) - 1; i >= 0; i-- {
		if err := m.connect(ctx, branch[i]); err != nil {
			return errors.Join(err, m.persistTip())
		}
		// Persisting the tip costs a commit; during a long catch-up do it once a second.
		// Redoing a few blocks after a crash is harmless: every listener is idempotent.
		if i == 0 || time.Since(persisted) > time.Second {
			if err := m.persistTip(); err != nil {
				return err
			}
			persisted = time.Now()
		}
		if len(branch) >= catchUpReport && (i == 0 || time.Since(progress) > 5*time.Second) {
			progress = time.Now()
			m.log.Info("catching up with bitcoind", "height", m.Height(), "remaining", i, "of", len(branch))
		}
	}
	return nil
}

// unwindPartial tells every listener that the partly handled block is gone, unless it is on
// branch, the blocks about to be connected (then its retry completes it). Without this, a block
// that failed halfway and was then reorganised out would stay in the listeners' caches.
func (m *Monitor) unwindPartial(ctx context.Context, branch []chainhash.Hash) error {
	if m.partial == nil {
		return nil
	}
	p := m.partial
	hash := p.header.BlockHash()
	if slices.Contains(branch, hash) {
		return nil
	}
	for _, l := range m.cfg.Listeners {
		if err := l.BlockDisconnected(ctx, &p.header, p.height); err != nil {
			return fmt.Errorf("undo partly handled block %s at %d: %w", hash, p.height, err)
		}
	}
	m.partial = nil
	m.log.Warn("a block left the chain before it was fully handled; undone", "block_hash", hash, "height", p.height)
	return nil
}

// redoUndone tells the listeners that handled the tip's failed disconnection that the tip,
// which stays, is connected. Without this, a block that came back to the best chain before the
// retry would stay missing from their state (the watcher's locator cache, the gatekeeper's
// height) although the monitor keeps it as processed. Every listener's connect is idempotent.
func (m *Monitor) redoUndone(ctx context.Context) error {
	u := m.undone
	if u == nil {
		return nil
	}
	top := m.chain[len(m.chain)-1]
	if u.ref != top { // cannot happen: the tip changes only once every listener disconnected it
		m.undone = nil
		return nil
	}
	block, err := m.cfg.Source.Block(ctx, top.Hash)
	if err != nil {
		return fmt.Errorf("get block %s: %w", top.Hash, err)
	}
	for _, l := range m.cfg.Listeners[:u.upTo+1] {
		if err := l.BlockConnected(ctx, block, top.Height); err != nil {
			return fmt.Errorf("connect again block %s at %d: %w", top.Hash, top.Height, err)
		}
	}
	m.undone = nil
	m.log.Warn("a block came back to the chain before its disconnection was fully handled; connected again", "block_hash", top.Hash, "height", top.Height)
	return nil
}

// loadOlder puts up to n processed blocks below the oldest one remembered at the front of
// m.chain, for a walk back to a fork deeper than Window. Loading at least as many as it holds
// keeps a very deep walk linear.
func (m *Monitor) loadOlder(ctx context.Context, best chainhash.Hash, n int64) error {
	oldest := m.chain[0]
	if oldest.Height == 0 {
		return fmt.Errorf("new best block %s shares no block with the chain the tower processed", best)
	}
	if len(m.chain) <= Window {
		m.log.Warn("following a reorg deeper than the last blocks remembered", "best_block_hash", best, "below", oldest.Height)
	}
	n = min(n, int64(oldest.Height))
	older := make([]BlockRef, n)
	for i := n - 1; i >= 0; i-- {
		hdr, err := m.cfg.Source.BlockHeader(ctx, oldest.Hash)
		if err != nil {
			return fmt.Errorf("get header %s: %w", oldest.Hash, err)
		}
		oldest = BlockRef{hdr.PrevBlock, oldest.Height - 1}
		older[i] = oldest
	}
	m.chain = append(older, m.chain...)
	return nil
}

// trim forgets the blocks below the newest Window that a deep walk loaded, also when the walk
// failed: kept, they would lower the bound under which bitcoind is reported behind (so a
// reindexing node would be followed down), and their room would stay allocated for good.
func (m *Monitor) trim() {
	if len(m.chain) > Window || cap(m.chain) > 4*Window {
		m.chain = slices.Clone(m.chain[max(0, len(m.chain)-Window):])
	}
}

// indexOf returns where hash is in m.chain, or -1. height, where it would be, is looked at
// first; the scan covers only the newest Window blocks, so a walk far below them stays linear.
func (m *Monitor) indexOf(hash chainhash.Hash, height int64) int {
	if i := height - int64(m.chain[0].Height); i >= 0 && i < int64(len(m.chain)) && m.chain[i].Hash == hash {
		return int(i)
	}
	for i := len(m.chain) - 1; i >= max(0, len(m.chain)-Window); i-- {
		if m.chain[i].Hash == hash {
			return i
		}
	}
	return -1
}

func (m *Monitor) disconnect(ctx context.Context, top BlockRef) error {
	hdr, err := m.cfg.Source.BlockHeader(ctx, top.Hash)
	if err != nil {
		return fmt.Errorf("get header %s: %w", top.Hash, err)
	}
	for i, l := range m.cfg.Listeners {
		if err := l.BlockDisconnected(ctx, hdr, top.Height); err != nil {
			if m.undone == nil || m.undone.ref != top {
				m.undone = &undoneBlock{ref: top}
			}
			m.undone.upTo = max(m.undone.upTo, i)
			return fmt.Errorf("disconnect block %s at %d: %w", top.Hash, top.Height, err)
		}
	}
	m.undone = nil
	m.chain = m.chain[:len(m.chain)-1]
	prev := m.chain[len(m.chain)-1]
	if err := m.cfg.Store.SetLastBlock(prev.Hash, prev.Height); err != nil {
		return fmt.Errorf("persist tip: %w", err)
	}
	m.height.Store(prev.Height)
	m.log.Warn("block disconnected", "block_hash", top.Hash, "height", top.Height)
	return nil
}

func (m *Monitor) connect(ctx context.Context, hash chainhash.Hash) error {
	start := time.Now()
	block, err := m.cfg.Source.Block(ctx, hash)
	if err != nil {
		return fmt.Errorf("get block %s: %w", hash, err)
	}
	height := m.chain[len(m.chain)-1].Height + 1
	for _, l := range m.cfg.Listeners {
		if err := l.BlockConnected(ctx, block, height); err != nil {
			m.partial = &partialBlock{header: block.Header, height: height}
			return fmt.Errorf("connect block %s at %d: %w", hash, height, err)
		}
	}
	m.partial = nil
	m.chain = append(m.chain, BlockRef{hash, height})
	if len(m.chain) > Window {
		m.chain = append(m.chain[:0], m.chain[len(m.chain)-Window:]...)
	}
	m.height.Store(height)
	m.lastMove.Store(int64(m.elapsed()))
	m.log.Debug("block connected", "block_hash", hash, "height", height, "txs", len(block.Transactions))
	if m.cfg.OnBlock != nil {
		m.cfg.OnBlock(height, time.Since(start))
	}
	return nil
}

// persistTip stores the last connected block as the one to resume from.
func (m *Monitor) persistTip() error {
	tip := m.chain[len(m.chain)-1]
	if err := m.cfg.Store.SetLastBlock(tip.Hash, tip.Height); err != nil {
		return fmt.Errorf("persist tip: %w", err)
	}
	return nil
}

// isUnreachable recognises a transport failure by behaviour, as with net.Error.
func isUnreachable(err error) bool {
	var u interface{ Unreachable() bool }
	return errors.As(err, &u) && u.Unreachable()
}

// Run polls every interval until ctx is done. Errors are logged and the next poll retries
// from the same block, so none is skipped.
func (m *Monitor) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	stale := max(30*time.Minute, 60*every) // far longer than a block interval
	warned := false
	for {
		err := m.Poll(ctx)
		if err == nil && m.cfg.AfterPoll != nil {
			err = m.cfg.AfterPoll(ctx)
		}
		if err != nil && ctx.Err() == nil {
			if !m.cfg.IsTransient(err) {
				m.failures.Add(1)
				m.log.Error("chain poll failed", "err", err)
			}
		} else if err == nil {
			m.failures.Store(0)
		}
		if idle := m.elapsed() - time.Duration(m.lastMove.Load()); idle > stale && !warned {
			m.log.Warn("chain tip has not moved", "for", idle.Round(time.Second), "height", m.Height())
			warned = true
		} else if idle <= stale {
			warned = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.cfg.Wake:
		}
	}
}
