package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

var errDown = errors.New("connection refused")

// fakeChain is an in-memory node: every block ever made stays fetchable (like a stale block
// on bitcoind), and best is the active tip.
type fakeChain struct {
	mu     sync.Mutex
	blocks map[chainhash.Hash]*wire.MsgBlock
	best   chainhash.Hash
	down   bool
	nonce  uint32
	// badHeader, if set, is a block whose header bitcoind fails to give (once).
	badHeader chainhash.Hash
}

func newFakeChain(n int) (*fakeChain, []chainhash.Hash) {
	c := &fakeChain{blocks: map[chainhash.Hash]*wire.MsgBlock{}}
	genesis := c.add(chainhash.Hash{})
	c.best = genesis
	return c, append([]chainhash.Hash{genesis}, c.extend(genesis, n)...)
}

func (c *fakeChain) add(prev chainhash.Hash) chainhash.Hash {
	c.nonce++
	b := &wire.MsgBlock{Header: wire.BlockHeader{PrevBlock: prev, Nonce: c.nonce}}
	h := b.BlockHash()
	c.blocks[h] = b
	return h
}

// extend mines n blocks on top of from and makes the last one the best tip.
func (c *fakeChain) extend(from chainhash.Hash, n int) []chainhash.Hash {
	var out []chainhash.Hash
	for range n {
		from = c.add(from)
		out = append(out, from)
	}
	if n > 0 {
		c.best = from
	}
	return out
}

func (c *fakeChain) BestBlockHash(context.Context) (chainhash.Hash, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return chainhash.Hash{}, errDown
	}
	return c.best, nil
}

func (c *fakeChain) BlockHeader(_ context.Context, h chainhash.Hash) (*wire.BlockHeader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, errDown
	}
	if h == c.badHeader {
		c.badHeader = chainhash.Hash{}
		return nil, fmt.Errorf("header of %s: internal error", h)
	}
	b, ok := c.blocks[h]
	if !ok {
		return nil, fmt.Errorf("unknown block %s", h)
	}
	hdr := b.Header
	return &hdr, nil
}

func (c *fakeChain) BlockHeight(_ context.Context, h chainhash.Hash) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return 0, errDown
	}
	height := uint32(0)
	for b, ok := c.blocks[h]; ok && b.Header.PrevBlock != (chainhash.Hash{}); b, ok = c.blocks[b.Header.PrevBlock] {
		height++
	}
	return height, nil
}

func (c *fakeChain) Block(_ context.Context, h chainhash.Hash) (*wire.MsgBlock, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, errDown
	}
	return c.blocks[h], nil
}

// recorder is a listener that logs events as "+height:hash" / "-height:hash".
type recorder struct {
	name   string
	events *[]string
	failAt uint32
	// failDisconnectAt makes the next disconnection at that height fail.
	failDisconnectAt uint32
}

func (r *recorder) BlockConnected(_ context.Context, b *wire.MsgBlock, h uint32) error {
	if h == r.failAt {
		r.failAt = 0
		return errors.New("listener failed")
	}
	*r.events = append(*r.events, fmt.Sprintf("%s+%d:%s", r.name, h, b.BlockHash()))
	return nil
}

func (r *recorder) BlockDisconnected(_ context.Context, hdr *wire.BlockHeader, h uint32) error {
	if h == r.failDisconnectAt {
		r.failDisconnectAt = 0
		return errors.New("listener failed")
	}
	*r.events = append(*r.events, fmt.Sprintf("%s-%d:%s", r.name, h, hdr.BlockHash()))
	return nil
}

type tipStore struct {
	hash   chainhash.Hash
	height uint32
}

func (s *tipStore) SetLastBlock(h chainhash.Hash, height uint32) error {
	s.hash, s.height = h, height
	return nil
}

func newMonitor(t *testing.T, c *fakeChain, tip chainhash.Hash, height uint32, ls ...Listener) (*Monitor, *tipStore) {
	t.Helper()
	st := &tipStore{}
	m, err := New(t.Context(), Config{Source: c, Store: st, Listeners: ls, IsTransient: func(err error) bool { return errors.Is(err, errDown) }}, tip, height)
	if err != nil {
		t.Fatal(err)
	}
	return m, st
}

func TestConnectsNewBlocksInOrderToEveryListener(t *testing.T) {
	c, hs := newFakeChain(10)
	var events []string
	m, st := newMonitor(t, c, hs[10], 10, &recorder{name: "g", events: &events}, &recorder{name: "w", events: &events})
	added := c.extend(hs[10], 3)
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, h := range added {
		want = append(want, fmt.Sprintf("g+%d:%s", 11+i, h), fmt.Sprintf("w+%d:%s", 11+i, h))
	}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n%v\nwant\n%v", events, want)
	}
	if st.hash != added[2] || st.height != 13 || m.Height() != 13 {
		t.Fatalf("tip %s@%d (monitor %d), want %s@13", st.hash, st.height, m.Height(), added[2])
	}
}

func TestReorgDisconnectsTipFirstThenConnects(t *testing.T) {
	c, hs := newFakeChain(10)
	var events []string
	m, _ := newMonitor(t, c, hs[10], 10, &recorder{name: "l", events: &events})
	fork := c.extend(hs[8], 4) // heights 9..12 replace 9..10
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("l-10:%s", hs[10]), fmt.Sprintf("l-9:%s", hs[9])}
	for i, h := range fork {
		want = append(want, fmt.Sprintf("l+%d:%s", 9+i, h))
	}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n%v\nwant\n%v", events, want)
	}
	if m.Height() != 12 {
		t.Fatalf("height %d, want 12", m.Height())
	}
}

func TestFailureResumesAtTheSameBlock(t *testing.T) {
	c, hs := newFakeChain(10)
	var events []string
	rec := &recorder{name: "l", events: &events, failAt: 12}
	m, st := newMonitor(t, c, hs[10], 10, rec)
	added := c.extend(hs[10], 3)
	if err := m.Poll(t.Context()); err == nil {
		t.Fatal("listener failure not reported")
	}
	if st.height != 11 || m.Height() != 11 {
		t.Fatalf("tip after failure %d/%d, want 11", st.height, m.Height())
	}
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("l+11:%s", added[0]), fmt.Sprintf("l+12:%s", added[1]), fmt.Sprintf("l+13:%s", added[2])}
	if !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v (no block skipped or repeated)", events, want)
	}
}

func TestOutageSkipsNothing(t *testing.T) {
	c, hs := newFakeChain(10)
	var events []string
	m, _ := newMonitor(t, c, hs[10], 10, &recorder{name: "l", events: &events})
	c.down = true
	added := c.extend(hs[10], 2)
	if err := m.Poll(t.Context()); !errors.Is(err, errDown) {
		t.Fatalf("poll during outage: err %v, want %v", err, errDown)
	}
	c.down = false
	if err := m.Poll(t.Context()); err != nil {
		t.Fatalf("poll after outage: %v", err)
	}
	if len(events) != 2 || events[1] != fmt.Sprintf("l+12:%s", added[1]) {
		t.Fatalf("events %v", events)
	}
}

func TestStartFromStaleTipWalksBackThroughTheReorg(t *testing.T) {
	c, hs := newFakeChain(10)
	fork := c.extend(hs[7], 5) // the stored tip hs[10] is now stale
	var events []string
	m, _ := newMonitor(t, c, hs[10], 10, &recorder{name: "l", events: &events})
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(events) != 3+5 || events[0] != fmt.Sprintf("l-10:%s", hs[10]) || events[7] != fmt.Sprintf("l+12:%s", fork[4]) {
		t.Fatalf("events %v", events)
	}
}

// A tower that was down for many more blocks than Window catches up on all of them.
func TestCatchesUpFarMoreThanWindow(t *testing.T) {
	c, hs := newFakeChain(10)
	var events []string
	m, st := newMonitor(t, c, hs[10], 10, &recorder{name: "l", events: &events})
	added := c.extend(hs[10], 3*Window)
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(events) != 3*Window || st.hash != added[len(added)-1] || st.height != 10+3*Window {
		t.Fatalf("%d events, tip %s@%d; want %d blocks up to %s@%d", len(events), st.hash, st.height, 3*Window, added[len(added)-1], 10+3*Window)
	}
}

// A fork deeper than Window is followed: every processed block above it is disconnected, tip
// first, with raw headers for the ones below the window, then the new branch is connected. It
// was refused on every poll, which kept the tower at its old tip for good.
func TestFollowsForkDeeperThanWindow(t *testing.T) {
	for _, depth := range []int{Window + 10, 5*Window + 3} {
		t.Run(fmt.Sprint(depth), func(t *testing.T) { testFollowsDeepFork(t, depth) })
	}
}

func testFollowsDeepFork(t *testing.T, depth int) {
	top := depth + 20
	c, hs := newFakeChain(top)
	var events []string
	m, st := newMonitor(t, c, hs[top], uint32(top), &recorder{name: "l", events: &events})
	forkHeight := top - depth
	added := c.extend(hs[forkHeight], depth+10)
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for h := top; h > forkHeight; h-- {
		want = append(want, fmt.Sprintf("l-%d:%s", h, hs[h]))
	}
	for i, h := range added {
		want = append(want, fmt.Sprintf("l+%d:%s", forkHeight+1+i, h))
	}
	if !slices.Equal(events, want) {
		t.Fatalf("%d events %v\nwant %d %v", len(events), events, len(want), want)
	}
	newTop := uint32(forkHeight + len(added))
	if m.Height() != newTop || st.hash != added[len(added)-1] || st.height != newTop {
		t.Fatalf("tip %s@%d (monitor at %d), want %s@%d", st.hash, st.height, m.Height(), added[len(added)-1], newTop)
	}
	if r := m.Recent(); len(r) != Window || r[len(r)-1].Hash != added[len(added)-1] || r[0].Height != newTop-Window+1 {
		t.Fatalf("%d recent blocks from %v to %v, want %d ending at the new tip", len(r), r[0], r[len(r)-1], Window)
	}
	// The headers loaded for the walk are not kept for the life of the process.
	if c := cap(m.chain); c > 4*Window {
		t.Fatalf("the remembered chain keeps room for %d blocks after the reorg", c)
	}
}

// A deep walk that fails (bitcoind errs on a header) leaves the monitor remembering only its
// Window blocks, as a restart would: the headers it loaded below them lowered the bound under
// which bitcoind counts as behind, so a bitcoind then going back to a block far below (a
// reindex) had the tower disconnect everything above it, instead of waiting.
func TestFailedDeepWalkKeepsBehindBound(t *testing.T) {
	c, hs := newFakeChain(2 * Window)
	var events []string
	m, _ := newMonitor(t, c, hs[2*Window], 2*Window, &recorder{name: "l", events: &events})
	forkHeight := Window / 4
	added := c.extend(hs[forkHeight], 2*Window) // added[i] is at height forkHeight+1+i
	c.badHeader = added[Window/2-forkHeight-1]  // at Window/2, below the remembered blocks
	if err := m.Poll(t.Context()); err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Fatalf("Poll: %v, want the header error", err)
	}
	if r := m.Recent(); len(r) != Window || r[0].Height != Window+1 {
		t.Fatalf("remembers %d blocks from %d after the failed walk, want %d from %d", len(r), r[0].Height, Window, Window+1)
	}
	c.mu.Lock()
	c.best = hs[Window/2] // bitcoind reindexing: back on the processed chain, far below
	c.mu.Unlock()
	if err := m.Poll(t.Context()); err == nil || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("Poll: %v, want bitcoind reported behind", err)
	}
	if len(events) != 0 || m.Height() != 2*Window {
		t.Fatalf("%d events, height %d: the tower followed bitcoind down", len(events), m.Height())
	}
	// Once bitcoind is back on the deep fork, it is followed.
	c.mu.Lock()
	c.best = added[len(added)-1]
	c.mu.Unlock()
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := uint32(forkHeight + len(added)); m.Height() != want || len(events) != 2*Window-forkHeight+len(added) {
		t.Fatalf("height %d after %d events, want %d after %d", m.Height(), len(events), want, 2*Window-forkHeight+len(added))
	}
}

// A deep reorg whose disconnections fail halfway resumes where it stopped, in the same process
// and after a restart from the persisted tip: every block above the fork is disconnected once,
// newest first, then the new branch connected.
func TestDeepReorgInterruptedResumes(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			top := 3 * Window
			c, hs := newFakeChain(top)
			var events []string
			rec := &recorder{name: "l", events: &events, failDisconnectAt: uint32(top - Window - 20)}
			m, st := newMonitor(t, c, hs[top], uint32(top), rec)
			forkHeight := Window / 2
			added := c.extend(hs[forkHeight], top)
			if err := m.Poll(t.Context()); err == nil {
				t.Fatal("listener failure not reported")
			}
			if st.hash != hs[top-Window-20] || st.height != uint32(top-Window-20) {
				t.Fatalf("persisted tip %s@%d, want the block whose disconnection failed, %s@%d", st.hash, st.height, hs[top-Window-20], top-Window-20)
			}
			if restart {
				m, st = newMonitor(t, c, st.hash, st.height, rec)
			}
			if err := m.Poll(t.Context()); err != nil {
				t.Fatal(err)
			}
			var want []string
			for h := top; h > forkHeight; h-- {
				want = append(want, fmt.Sprintf("l-%d:%s", h, hs[h]))
			}
			for i, h := range added {
				want = append(want, fmt.Sprintf("l+%d:%s", forkHeight+1+i, h))
			}
			if !slices.Equal(events, want) {
				t.Fatalf("%d events, want %d:\n%v\nwant\n%v", len(events), len(want), events, want)
			}
			newTop := uint32(forkHeight + len(added))
			if st.hash != added[len(added)-1] || st.height != newTop || m.Height() != newTop {
				t.Fatalf("tip %s@%d (monitor at %d), want %s@%d", st.hash, st.height, m.Height(), added[len(added)-1], newTop)
			}
		})
	}
}

// A best chain that shares no block with the processed one, down to its first block, is
// refused rather than applied.
func TestRefusesChainWithoutCommonBlock(t *testing.T) {
	c, hs := newFakeChain(Window + 20)
	other := c.extend(c.add(chainhash.Hash{}), Window+30) // from a genesis of its own
	var events []string
	m, st := newMonitor(t, c, hs[Window+20], Window+20, &recorder{name: "l", events: &events})
	err := m.Poll(t.Context())
	if err == nil || !strings.Contains(err.Error(), "shares no block") {
		t.Fatalf("Poll: %v, want a refusal", err)
	}
	if len(events) != 0 || m.Height() != Window+20 || st.height != 0 || c.best != other[len(other)-1] {
		t.Fatalf("applied %d events, height %d", len(events), m.Height())
	}
}

// Run calls AfterPoll after each successful poll, on its goroutine, and polls at once when
// woken instead of waiting for its (here hour-long) tick.
func TestRunAfterPollAndWake(t *testing.T) {
	c, hs := newFakeChain(3)
	var events []string
	polled := make(chan int, 1)
	wake := make(chan struct{}, 1)
	calls := 0
	st := &tipStore{}
	m, err := New(t.Context(), Config{
		Source: c, Store: st, Listeners: []Listener{&recorder{name: "w", events: &events}},
		AfterPoll: func(context.Context) error {
			calls++ // only Run's goroutine touches it
			polled <- len(events)
			return nil
		},
		Wake: wake,
	}, hs[3], 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, time.Hour) }()
	if n := <-polled; n != 0 {
		t.Fatalf("first AfterPoll saw %d events, want 0", n)
	}
	c.mu.Lock()
	c.extend(hs[3], 1)
	c.mu.Unlock()
	wake <- struct{}{}
	if n := <-polled; n != 1 {
		t.Fatalf("AfterPoll after the wake-up saw %d events, want the new block's", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("AfterPoll called %d times, want 2", calls)
	}
}

// A block the first listener handled and the second failed on, then reorganised out before the
// retry: both listeners are told it left (the first holds its effects, e.g. the watcher's
// locator cache) before the replacing block is connected.
func TestPartlyHandledBlockReorgedOutIsUndone(t *testing.T) {
	c, hs := newFakeChain(10)
	var events []string
	first := &recorder{name: "w", events: &events}
	second := &recorder{name: "r", events: &events, failAt: 11}
	m, _ := newMonitor(t, c, hs[10], 10, first, second)
	stale := c.extend(hs[10], 1)[0]
	if err := m.Poll(t.Context()); err == nil {
		t.Fatal("listener failure not reported")
	}
	replacing := c.extend(hs[10], 2) // a longer branch without the failed block
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("w+11:%s", stale),
		fmt.Sprintf("w-11:%s", stale), fmt.Sprintf("r-11:%s", stale),
		fmt.Sprintf("w+11:%s", replacing[0]), fmt.Sprintf("r+11:%s", replacing[0]),
		fmt.Sprintf("w+12:%s", replacing[1]), fmt.Sprintf("r+12:%s", replacing[1]),
	}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n%v\nwant\n%v", events, want)
	}
}

// A tip whose disconnection the first listener handled and the second failed on, then back on
// the best chain before the retry (the reorg reversed, or the tip is best again): both are
// told it is connected again before the blocks above it are connected, so every listener
// holds what the monitor holds.
func TestPartlyDisconnectedBlockBackOnTheChainIsConnectedAgain(t *testing.T) {
	for _, above := range []int{0, 2} {
		t.Run(fmt.Sprintf("%d blocks above it", above), func(t *testing.T) {
			c, hs := newFakeChain(10)
			var events []string
			first := &recorder{name: "w", events: &events}
			second := &recorder{name: "r", events: &events, failDisconnectAt: 10}
			m, _ := newMonitor(t, c, hs[10], 10, first, second)
			c.extend(hs[9], 2) // a longer branch without hs[10]
			if err := m.Poll(t.Context()); err == nil {
				t.Fatal("listener failure not reported")
			}
			c.best = hs[10]
			added := c.extend(hs[10], above)
			if err := m.Poll(t.Context()); err != nil {
				t.Fatal(err)
			}
			// The failed listener too: it may have half handled it (the watcher drops the
			// block from its cache before the store write that can fail).
			want := []string{fmt.Sprintf("w-10:%s", hs[10]), fmt.Sprintf("w+10:%s", hs[10]), fmt.Sprintf("r+10:%s", hs[10])}
			for i, h := range added {
				want = append(want, fmt.Sprintf("w+%d:%s", 11+i, h), fmt.Sprintf("r+%d:%s", 11+i, h))
			}
			if !slices.Equal(events, want) {
				t.Fatalf("events\n%v\nwant\n%v", events, want)
			}
			if m.Height() != uint32(10+above) {
				t.Fatalf("height %d, want %d", m.Height(), 10+above)
			}
			// Nothing is redone once handled.
			events = nil
			if err := m.Poll(t.Context()); err != nil || len(events) != 0 {
				t.Fatalf("poll after: %v %v", events, err)
			}
		})
	}
}

// A partly disconnected block still off the chain at the retry is disconnected again, and
// not connected again.
func TestPartlyDisconnectedBlockRetried(t *testing.T) {
	c, hs := newFakeChain(10)
	var events []string
	m, _ := newMonitor(t, c, hs[10], 10, &recorder{name: "w", events: &events}, &recorder{name: "r", events: &events, failDisconnectAt: 10})
	fork := c.extend(hs[9], 2)
	if err := m.Poll(t.Context()); err == nil {
		t.Fatal("listener failure not reported")
	}
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("w-10:%s", hs[10]), fmt.Sprintf("w-10:%s", hs[10]), fmt.Sprintf("r-10:%s", hs[10]),
		fmt.Sprintf("w+10:%s", fork[0]), fmt.Sprintf("r+10:%s", fork[0]), fmt.Sprintf("w+11:%s", fork[1]), fmt.Sprintf("r+11:%s", fork[1])}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n%v\nwant\n%v", events, want)
	}
	events = nil // nothing is connected again once the disconnection completed
	if err := m.Poll(t.Context()); err != nil || len(events) != 0 {
		t.Fatalf("poll after: %v %v", events, err)
	}
}

// A partly handled block that is retried completes without being undone.
func TestPartlyHandledBlockRetriedIsNotUndone(t *testing.T) {
	c, hs := newFakeChain(10)
	var events []string
	m, _ := newMonitor(t, c, hs[10], 10, &recorder{name: "w", events: &events}, &recorder{name: "r", events: &events, failAt: 11})
	added := c.extend(hs[10], 1)
	if err := m.Poll(t.Context()); err == nil {
		t.Fatal("listener failure not reported")
	}
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("w+11:%s", added[0]), fmt.Sprintf("w+11:%s", added[0]), fmt.Sprintf("r+11:%s", added[0])}
	if !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v", events, want)
	}
}

// busyRecorder logs Begin and End into the same event list as the listeners.
type busyRecorder struct{ events *[]string }

func (b busyRecorder) Begin() { *b.events = append(*b.events, "begin") }
func (b busyRecorder) End()   { *b.events = append(*b.events, "end") }

// Busy is raised before a poll's first block (and its reorg) and lowered after the last, and
// a poll with no new block leaves it alone.
func TestBusyCoversEveryBlockOfAPoll(t *testing.T) {
	c, hs := newFakeChain(10)
	var events []string
	st := &tipStore{}
	m, err := New(t.Context(), Config{Source: c, Store: st, Listeners: []Listener{&recorder{name: "w", events: &events}},
		Busy: busyRecorder{&events}}, hs[10], 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(events) != 0 {
		t.Fatalf("a poll without a new block raised Busy: %v", events)
	}
	fork := c.extend(hs[9], 2) // replaces block 10
	if err := m.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"begin", fmt.Sprintf("w-10:%s", hs[10]), fmt.Sprintf("w+10:%s", fork[0]), fmt.Sprintf("w+11:%s", fork[1]), "end"}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n%v\nwant\n%v", events, want)
	}
}

// flaky fails every block until ok, signalling each call. A call decides before it signals,
// so the test's ok.Store after a signal cannot turn that call into a success (which hung the
// test: its AfterPoll waited to report while the test waited for a fourth call).
type flaky struct {
	calls chan struct{}
	ok    atomic.Bool
}

func (f *flaky) BlockConnected(context.Context, *wire.MsgBlock, uint32) error {
	ok := f.ok.Load()
	f.calls <- struct{}{}
	if !ok {
		return errors.New("store refused the write")
	}
	return nil
}

func (f *flaky) BlockDisconnected(context.Context, *wire.BlockHeader, uint32) error { return nil }

// Run counts the polls in a row that fail other than transiently (a leader that cannot
// process blocks gives up its leadership on it), and a successful poll clears the count.
func TestRunCountsFailures(t *testing.T) {
	c, hs := newFakeChain(3)
	f := &flaky{calls: make(chan struct{})}
	polled := make(chan int64)
	wake := make(chan struct{}, 1)
	var m *Monitor
	m, err := New(t.Context(), Config{Source: c, Store: &tipStore{}, Listeners: []Listener{f}, Wake: wake,
		IsTransient: func(err error) bool { return errors.Is(err, errDown) },
		AfterPoll:   func(context.Context) error { polled <- m.Failures(); return nil }}, hs[3], 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = m.Run(ctx, time.Hour) }()
	<-polled // nothing new
	c.mu.Lock()
	c.extend(hs[3], 1)
	c.mu.Unlock()
	for range 3 {
		wake <- struct{}{}
		<-f.calls
	}
	// The third try has begun: the first two were counted.
	if n := m.Failures(); n < 2 {
		t.Fatalf("Failures = %d after 2 failed polls", n)
	}
	f.ok.Store(true)
	wake <- struct{}{}
	<-f.calls
	if n := <-polled; n < 3 {
		t.Fatalf("Failures = %d after 3 failed polls", n)
	}
	wake <- struct{}{}
	if n := <-polled; n != 0 {
		t.Fatalf("Failures = %d after a successful poll", n)
	}
}

// bitcoind whose best block is below every block the tower remembers (reindexing, or a node
// still syncing) is reported as behind, not as a fork: the operator reads this line on every
// poll until bitcoind catches up, and nothing is disconnected meanwhile.
func TestBitcoindFarBehindIsReportedAsBehind(t *testing.T) {
	c, hs := newFakeChain(2 * Window)
	var events []string
	m, _ := newMonitor(t, c, hs[2*Window], 2*Window, &recorder{name: "l", events: &events})
	c.mu.Lock()
	c.best = hs[Window/2] // on the same chain, Window/2 blocks above genesis
	c.mu.Unlock()
	err := m.Poll(t.Context())
	if err == nil {
		t.Fatal("poll succeeded with bitcoind far behind")
	}
	for _, want := range []string{"behind", fmt.Sprint(Window / 2), fmt.Sprint(2 * Window)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if len(events) != 0 || m.Height() != 2*Window {
		t.Fatalf("%d events, height %d", len(events), m.Height())
	}
}

// syncBuffer is a log sink Run's goroutine writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The stale-tip warning is measured on the monotonic clock: in Unix time, a step of the system
// clock (NTP) forward warned of a tip that had just moved, and one back silenced the warning
// for as long as the step. The test steps a fake monotonic clock past the stale bound while
// the wall clock barely moves.
func TestStaleTipIsMeasuredOnTheMonotonicClock(t *testing.T) {
	c, hs := newFakeChain(3)
	var logs syncBuffer
	polled := make(chan struct{})
	wake := make(chan struct{})
	m, err := New(t.Context(), Config{
		Source: c, Store: &tipStore{}, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		AfterPoll: func(context.Context) error { polled <- struct{}{}; return nil },
		Wake:      wake,
	}, hs[3], 3)
	if err != nil {
		t.Fatal(err)
	}
	var step atomic.Int64
	start := time.Now()
	m.sinceStart = func() time.Duration { return time.Since(start) + time.Duration(step.Load()) }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, time.Hour) }() // stale past 60 h
	<-polled
	wake <- struct{}{}
	<-polled // the first poll's stale check is done
	if strings.Contains(logs.String(), "has not moved") {
		t.Fatalf("warned of a tip that has just been loaded:\n%s", logs.String())
	}
	step.Store(int64(61 * time.Hour))
	wake <- struct{}{}
	<-polled
	wake <- struct{}{}
	<-polled // the stale check after the step is done
	if !strings.Contains(logs.String(), "chain tip has not moved") {
		t.Fatalf("no warning 61 h after the tip last moved on the monotonic clock:\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
