package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/chain"
	"github.com/teos-go/teos/internal/frontend"
	"github.com/teos-go/teos/internal/responder"
	"github.com/teos-go/teos/internal/watcher"
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

// blockOnly is a chain source of a genesis block and one child.
type blockOnly struct{ genesis, child wire.MsgBlock }

func (s *blockOnly) BestBlockHash(context.Context) (chainhash.Hash, error) {
	return s.child.BlockHash(), nil
}

func (s *blockOnly) BlockHeader(_ context.Context, h chainhash.Hash) (*wire.BlockHeader, error) {
	b, err := s.Block(context.Background(), h)
	if err != nil {
		return nil, err
	}
	return &b.Header, nil
}

func (s *blockOnly) Block(_ context.Context, h chainhash.Hash) (*wire.MsgBlock, error) {
	for _, b := range []*wire.MsgBlock{&s.genesis, &s.child} {
		if b.BlockHash() == h {
			return b, nil
		}
	}
	return nil, errors.New("unknown block")
}

func (s *blockOnly) BlockHeight(_ context.Context, h chainhash.Hash) (uint32, error) {
	if h == s.child.BlockHash() {
		return 1, nil
	}
	return 0, nil
}

// gateProbe is a block listener that, like a request, waits at the blocks-first gate.
type gateProbe struct{ g *blockfirst.Gate }

func (p gateProbe) BlockConnected(context.Context, *wire.MsgBlock, uint32) error {
	p.g.Wait()
	return nil
}

func (gateProbe) BlockDisconnected(context.Context, *wire.BlockHeader, uint32) error { return nil }

// On a shared database the leader's monitor raises the blocks-first gate while it processes a
// block, so its own requests step aside; a follower's never does.
func TestSharedBlocksFirstOnlyWhileLeading(t *testing.T) {
	for _, leading := range []bool{true, false} {
		g := blockfirst.New(time.Millisecond) // the probe waits inside the block: keep it short
		r := &roles{w: watcher.New(watcher.Config{}), blocks: g}
		src := &blockOnly{}
		src.child.Header.PrevBlock = src.genesis.BlockHash()
		cfg := r.monitorConfig(leading, []chain.Listener{gateProbe{g}})
		cfg.Source, cfg.Store = src, noTip{}
		mon, err := chain.New(context.Background(), cfg, src.genesis.BlockHash(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := mon.Poll(context.Background()); err != nil || mon.Height() != 1 {
			t.Fatalf("leading %v: poll: %v, height %d", leading, err, mon.Height())
		}
		waits, _ := g.Stats()
		if want := map[bool]int64{true: 1, false: 0}[leading]; waits != want {
			t.Errorf("leading %v: %d waits at the gate during the block, want %d", leading, waits, want)
		}
	}
}

// The shared watcher's responder answers the queued hand-over's block check through the
// current term's responder; between terms it answers an error, so the entry stays queued
// rather than being decided (before, shared mode skipped the check and deleted it).
func TestSwapResponderBlockInChain(t *testing.T) {
	var s swapResponder
	if _, err := s.BlockInChain(t.Context(), chainhash.Hash{1}); !errors.Is(err, errNotLeading) {
		t.Fatalf("no term: %v, want errNotLeading", err)
	}
	s.set(responder.New(responder.Config{Carrier: inChain{}}, 100))
	in, err := s.BlockInChain(t.Context(), chainhash.Hash{1})
	if err != nil || in {
		t.Fatalf("with a responder: %v, %v; want its chain's answer (not in the chain)", in, err)
	}
}

// inChain is a carrier whose chain holds no block: only the chain look-ups are used.
type inChain struct{ responder.Carrier }

func (inChain) Tip(context.Context) (chainhash.Hash, uint32, error) { return chainhash.Hash{}, 0, nil }
func (inChain) InBlockAt(context.Context, chainhash.Hash, uint32) (bool, error) {
	return false, nil
}
func (inChain) InBestChain(context.Context, chainhash.Hash) (bool, error) { return false, nil }
