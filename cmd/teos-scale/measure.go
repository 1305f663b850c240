package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
)

// memSnap is the process's memory after a GC.
type memSnap struct {
	heapInuse, heapAlloc, heapSys uint64 // bytes
	rss, rssAnon, rssFile, hwm    uint64 // bytes, from /proc/self/status
}

func snapshot() memSnap {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSnap{heapInuse: ms.HeapInuse, heapAlloc: ms.HeapAlloc, heapSys: ms.HeapSys}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			s.rss = kb << 10
		case "RssAnon":
			s.rssAnon = kb << 10
		case "RssFile":
			s.rssFile = kb << 10
		case "VmHWM":
			s.hwm = kb << 10
		}
	}
	return s
}

// acceptingResponder does what the real responder does for a breach but broadcasts nothing:
// every penalty is taken as accepted into the mempool. The watcher stores the trackers.
type acceptingResponder struct {
	height     uint32
	tracked    int
	already    int // stays 0: the watcher never hands over a UUID that has a tracker
	badPenalty int // penalties that do not spend their dispute: the decryption went wrong
}

func (*acceptingResponder) BlockInChain(context.Context, chainhash.Hash) (bool, error) {
	return true, nil
}

func (r *acceptingResponder) HandleBreach(_ context.Context, id teos.UUID, dispute, penalty *wire.MsgTx) (*store.Tracker, error) {
	if len(penalty.TxIn) == 0 || penalty.TxIn[0].PreviousOutPoint.Hash != dispute.TxHash() {
		r.badPenalty++
	}
	r.tracked++
	return &store.Tracker{
		UUID: id, DisputeTx: serialize(dispute), PenaltyTx: serialize(penalty),
		DisputeTxID: dispute.TxHash(), PenaltyTxID: penalty.TxHash(), Height: r.height,
	}, nil
}

// randomTx is a two-in, two-out segwit payment with random outpoints.
func randomTx(rng *rand.ChaCha8) *wire.MsgTx {
	rnd := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rng.Read(b)
		return b
	}
	tx := wire.NewMsgTx(2)
	for range 2 {
		var prev chainhash.Hash
		copy(prev[:], rnd(32))
		tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&prev, uint32(rng.Uint64()%4)), nil, wire.TxWitness{rnd(72), rnd(33)}))
	}
	tx.AddTxOut(wire.NewTxOut(int64(rng.Uint64()%1e8), append([]byte{0x00, 0x14}, rnd(20)...)))
	tx.AddTxOut(wire.NewTxOut(int64(rng.Uint64()%1e8), append([]byte{0x00, 0x20}, rnd(32)...)))
	return tx
}

// makeBlock builds a block of txs transactions (a coinbase stand-in first) with the disputes
// at random positions.
func makeBlock(rng *rand.ChaCha8, prev chainhash.Hash, nonce uint32, txs int, disputes []*wire.MsgTx) *wire.MsgBlock {
	blk := wire.NewMsgBlock(wire.NewBlockHeader(1, &prev, &chainhash.Hash{}, 0x1d00ffff, nonce))
	blk.Transactions = make([]*wire.MsgTx, 0, txs)
	blk.Transactions = append(blk.Transactions, randomTx(rng))
	for len(blk.Transactions) < txs-len(disputes) {
		blk.Transactions = append(blk.Transactions, randomTx(rng))
	}
	for _, d := range disputes {
		pos := 1 + int(rng.Uint64()%uint64(len(blk.Transactions)))
		blk.Transactions = slices.Insert(blk.Transactions, pos, d)
	}
	return blk
}

// dropFromPageCache asks the kernel to forget the file's cached pages, so the first block
// reads from disk. It needs no privileges but only drops clean pages: the fill synced them.
func dropFromPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", path, err)
	}
	return nil
}

type measureConfig struct {
	path                 string
	blocks, txs, matches int
	appointments, users  int
	seed                 uint64
	cold                 bool
	cpuProfile           string
	fileStats            bool
	noFilter             bool
}

type blockTimes struct{ gatekeeper, watcher, total, hashing, lookup []time.Duration }

// measure reopens the fixture with production options and connects synthetic blocks through
// the real gatekeeper and watcher, printing a table to out.
func measure(cfg measureConfig, out io.Writer) error {
	if cfg.matches*cfg.blocks > cfg.appointments {
		return fmt.Errorf("%d matches in %d blocks need as many stored appointments, have %d", cfg.matches, cfg.blocks, cfg.appointments)
	}
	if cfg.cold {
		if err := dropFromPageCache(cfg.path); err != nil {
			return err
		}
		// The store's saved locator filter, if any, is read cold too.
		if err := dropFromPageCache(cfg.path + ".locfilter"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	before := snapshot()
	t0 := time.Now()
	s, err := store.Open(cfg.path, &store.Options{NoLocatorFilter: cfg.noFilter}) // fsync on, as teosd runs
	if err != nil {
		return err
	}
	openTime := time.Since(t0)
	defer func() { _ = s.Close() }()
	// The first block waits for the locator filter, as it would on a tower started a moment earlier.
	var filterWait time.Duration
	if !cfg.noFilter {
		s.WaitLocatorFilter(nil)
		filterWait = time.Since(t0) - openTime
	}

	gk := gatekeeper.New(gatekeeper.Config{Store: s, SubscriptionSlots: userSlots, SubscriptionDuration: 4320, ExpiryDelta: 6}, startBlock-1)
	key, err := btcec.NewPrivateKey()
	if err != nil {
		return err
	}
	resp := &acceptingResponder{}
	w := watcher.New(watcher.Config{Store: s, Gatekeeper: gk, TowerKey: key, Responder: resp})
	afterOpen := snapshot()

	// An earlier run on this fixture left its breaches tracked and no longer watched: a
	// dispute of one of those would find nothing, so the draws skip them. Read only when
	// there are any (the meta count is one page), so a fresh fixture's first block stays cold.
	triggered := map[teos.UUID]bool{}
	if _, _, n, err := s.Counts(); err != nil {
		return err
	} else if n > 0 {
		ts, err := s.Trackers()
		if err != nil {
			return err
		}
		for _, t := range ts {
			triggered[t.UUID] = true
		}
	}
	if left := cfg.appointments - len(triggered); cfg.matches*cfg.blocks > left {
		return fmt.Errorf("%d matches in %d blocks need as many watched appointments; earlier runs triggered %d of the %d (refill with -rebuild)",
			cfg.matches, cfg.blocks, len(triggered), cfg.appointments)
	}

	rng := rand.NewChaCha8(seed32(cfg.seed))
	picked := make(map[uint64]bool)
	var times blockTimes
	var prev chainhash.Hash
	ctx := context.Background()

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for j := range cfg.blocks {
		var disputes []*wire.MsgTx
		for len(disputes) < cfg.matches {
			i := rng.Uint64() % uint64(cfg.appointments)
			if !picked[i] {
				picked[i] = true
				if !triggered[appointment(i, cfg.users).UUID()] {
					disputes = append(disputes, disputeTx(i))
				}
			}
		}
		blk := makeBlock(rng, prev, uint32(j), cfg.txs, disputes)
		height := uint32(startBlock + j)
		resp.height = height

		t0 := time.Now()
		if err := gk.BlockConnected(ctx, blk, height); err != nil {
			return err
		}
		t1 := time.Now()
		if err := w.BlockConnected(ctx, blk, height); err != nil {
			return err
		}
		t2 := time.Now()
		times.gatekeeper = append(times.gatekeeper, t1.Sub(t0))
		times.watcher = append(times.watcher, t2.Sub(t1))
		times.total = append(times.total, t2.Sub(t0))

		// The same block again, split: txid+locator hashing, then the store lookup alone (warm).
		t3 := time.Now()
		locs := make([]teos.Locator, 0, len(blk.Transactions))
		for _, tx := range blk.Transactions {
			locs = append(locs, teos.NewLocator(tx.TxHash()))
		}
		t4 := time.Now()
		if _, err := s.AppointmentsByLocators(locs); err != nil {
			return err
		}
		times.hashing = append(times.hashing, t4.Sub(t3))
		times.lookup = append(times.lookup, time.Since(t4))
		prev = blk.BlockHash()
	}
	pprof.StopCPUProfile()
	afterBlocks := snapshot()
	debug.FreeOSMemory() // returns freed heap to the OS: what the process really keeps
	afterFree := snapshot()
	runtime.KeepAlive(w) // its locator cache (the last 6 blocks) counts in the snapshots

	users, watching, trackers, err := s.Counts()
	if err != nil {
		return err
	}
	cache := "as left by earlier runs"
	if cfg.cold {
		cache = "file dropped before open (cold first block)"
	}
	fmt.Fprintf(out, "store after the blocks: %d users, %d appointments watched, %d trackers; open %.1f ms (fsync on); page cache: %s\n",
		users, watching, trackers, ms(openTime), cache)
	if fs := s.LocatorFilterStats(); cfg.noFilter {
		fmt.Fprintf(out, "locator filter: off (every locator looked up in the index)\n")
	} else {
		how := "built from the index"
		if fs.Loaded {
			how = "loaded from the file saved at the last Close"
		}
		fmt.Fprintf(out, "locator filter: %s in %.1f ms (ready %.1f ms after open), %.1f MiB = %.2f bytes/appointment, capacity %d keys, %d added\n",
			how, ms(fs.BuildTime), ms(filterWait), mib(uint64(fs.Bytes)), float64(fs.Bytes)/float64(cfg.appointments), fs.Capacity, fs.Added)
	}
	fmt.Fprintf(out, "blocks: %d x %d txs, %d matching per block (seed %d)\n", cfg.blocks, cfg.txs, cfg.matches, cfg.seed)
	fmt.Fprintf(out, "%-28s %9s %9s %9s %9s %12s\n", "per block (ms)", "first", "min", "p50", "max", "p50 2nd half")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{
		{"gatekeeper.BlockConnected", times.gatekeeper},
		{"watcher.BlockConnected", times.watcher},
		{"total", times.total},
		{"rerun: txid+locator hashing", times.hashing},
		{"rerun: store lookup only", times.lookup},
	} {
		sorted := slices.Clone(row.d)
		slices.Sort(sorted)
		// The second half has the index mostly in the page cache: the steady state of a daemon.
		late := slices.Clone(row.d[len(row.d)/2:])
		slices.Sort(late)
		fmt.Fprintf(out, "%-28s %9.2f %9.2f %9.2f %9.2f %12.2f\n", row.name, ms(row.d[0]), ms(sorted[0]), ms(sorted[len(sorted)/2]), ms(sorted[len(sorted)-1]), p50(late))
	}
	fmt.Fprintf(out, "breaches: %d handed over and tracked, %d already tracked, %d bad penalties (want %d, 0, 0)\n",
		resp.tracked, resp.already, resp.badPenalty, cfg.blocks*cfg.matches)
	fmt.Fprintf(out, "%-14s %10s %10s %10s %10s %10s %10s\n", "memory (MiB)", "heapInuse", "heapAlloc", "VmRSS", "RssAnon", "RssFile", "VmHWM")
	for _, m := range []struct {
		name string
		s    memSnap
	}{{"before open", before}, {"after open", afterOpen}, {"after blocks", afterBlocks}, {"+FreeOSMemory", afterFree}} {
		fmt.Fprintf(out, "%-14s %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n", m.name,
			mib(m.s.heapInuse), mib(m.s.heapAlloc), mib(m.s.rss), mib(m.s.rssAnon), mib(m.s.rssFile), mib(m.s.hwm))
	}
	if cfg.fileStats {
		if err := s.Close(); err != nil {
			return err
		}
		if err := printFileStats(cfg.path, out); err != nil {
			return err
		}
	}
	if resp.tracked+resp.already != cfg.blocks*cfg.matches || resp.badPenalty != 0 {
		return fmt.Errorf("responder saw %d breaches (%d bad), want %d", resp.tracked+resp.already, resp.badPenalty, cfg.blocks*cfg.matches)
	}
	return nil
}

func p50(sorted []time.Duration) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return ms(sorted[len(sorted)/2])
}

func seed32(s uint64) [32]byte {
	var b [32]byte
	for i := range 4 {
		for k := range 8 {
			b[i*8+k] = byte(s >> (8 * k))
		}
	}
	return b
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b uint64) float64       { return float64(b) / (1 << 20) }

// printFileStats opens the closed file and prints each bucket's B+tree shape. It
// reads every page, so it is slow on a big cold file.
func printFileStats(path string, out io.Writer) error {
	// Not read-only: only a writable open loads the freelist.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintf(out, "file: %d free pages (%.1f MiB)\n", db.Stats().FreePageN, mib(uint64(db.Stats().FreePageN)*uint64(db.Info().PageSize)))
	return db.View(func(tx *bolt.Tx) error {
		fmt.Fprintf(out, "%-14s %10s %6s %10s %8s %10s\n", "bucket", "keys", "depth", "leafPages", "leafUse", "branchPgs")
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			st := b.Stats()
			use := 0.0
			if st.LeafAlloc > 0 {
				use = 100 * float64(st.LeafInuse) / float64(st.LeafAlloc)
			}
			fmt.Fprintf(out, "%-14s %10d %6d %10d %7.0f%% %10d\n", name, st.KeyN, st.Depth, st.LeafPageN+st.LeafOverflowN, use, st.BranchPageN)
			return nil
		})
	})
}
