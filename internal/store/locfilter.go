package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// The locator filter answers "is any appointment stored under this locator?" from memory,
// with no false negatives and about 0.1% false positives, so that a block's 4,000 lookups
// touch the locator index (gigabytes at 10M appointments, cold after a restart) only for the
// few locators that may match. It is a blocked Bloom filter: one 512-bit block (8 words) per
// key, one bit set in each word, 16 bits per key at its capacity (2 bytes per appointment).
//
// Correctness rests on one rule: a locator is added to the filter inside the write
// transaction that puts its index entry, before the commit, so a reader that can see the
// entry also finds the locator in the filter. Deletes are not applied (a Bloom filter cannot
// remove keys); they only make the filter staler, and a rebuild starts in the background when
// it is too stale or too full. A rolled back add leaves a harmless false positive.
//
// At a clean Close the filter is saved next to the database (<db>.locfilter) and an epoch
// naming that save is put in meta; Open loads the file only if the epochs agree and removes
// the epoch before any write, so a file left by a crash or an older state is never trusted.
// The file also names the database's transaction id, modification time and size then: a
// program unaware of the filter (an older teosd) leaves the epoch in place when it writes,
// and a compaction restarts the ids, so the id alone does not prove the same contents.
// Otherwise Open starts a build from the index in the background; until it is ready every
// locator is looked up in the index, as without a filter.

const (
	filterBitsPerKey   = 16
	filterWordsPerBlk  = 8
	filterMinCapacity  = 1 << 16
	filterFileMagic    = "TEOSLF02"
	filterFileSuffix   = ".locfilter"
	filterHeaderLen    = 8 + 16 + 8*8 // magic, epoch, txid, mtime, size, k0, k1, capacity, added, words
	filterEpochLen     = 16
	filterRebuildFull  = 2 // rebuild when added > capacity * this
	filterRebuildStale = 2 // rebuild when deleted > added / this
)

// keyLocatorFilter is the meta key holding the epoch of the filter file saved at the last
// clean Close; Open removes it.
var keyLocatorFilter = []byte("locator_filter_epoch")

// Salts spreading a key's 8 bits over the 8 words of its block (odd constants, as in the
// split-block Bloom filters of Parquet and Impala).
var filterSalts = [filterWordsPerBlk]uint32{
	0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
}

// locFilter is one blocked Bloom filter. Words are set and read atomically: the single
// writer adds while readers query.
type locFilter struct {
	words    []uint64
	nblocks  uint64
	k0, k1   uint64 // random keys: clients choose locators, and a block's txids can be ground
	capacity uint64
	added    atomic.Uint64
}

func newLocFilter(capacity uint64) *locFilter {
	capacity = max(capacity, filterMinCapacity)
	nblocks := (capacity*filterBitsPerKey + 511) / 512
	var k [16]byte
	_, _ = rand.Read(k[:])
	return &locFilter{
		words:    make([]uint64, nblocks*filterWordsPerBlk),
		nblocks:  nblocks,
		k0:       binary.LittleEndian.Uint64(k[:8]),
		k1:       binary.LittleEndian.Uint64(k[8:]),
		capacity: capacity,
	}
}

// hash mixes the locator with the filter's keys (not a cryptographic MAC: it only has to keep
// chosen locators from piling into chosen blocks).
func (f *locFilter) hash(loc *teos.Locator) uint64 {
	a := binary.LittleEndian.Uint64(loc[:8]) ^ f.k0
	b := binary.LittleEndian.Uint64(loc[8:]) ^ f.k1
	hi, lo := bits.Mul64(a, b^0x9e3779b97f4a7c15)
	h := hi ^ lo
	hi, lo = bits.Mul64(h^b, 0xbf58476d1ce4e5b9)
	return hi ^ lo
}

// slot returns the first word of the key's block and the 32 bits its word bits come from.
func (f *locFilter) slot(loc *teos.Locator) (uint64, uint32) {
	h := f.hash(loc)
	blk, _ := bits.Mul64(h, f.nblocks) // h * nblocks / 2^64: uniform in [0, nblocks)
	return blk * filterWordsPerBlk, uint32(h)
}

func (f *locFilter) add(loc *teos.Locator) {
	base, h := f.slot(loc)
	for i, salt := range filterSalts {
		atomic.OrUint64(&f.words[base+uint64(i)], 1<<((h*salt)>>26))
	}
	f.added.Add(1)
}

func (f *locFilter) mayContain(loc *teos.Locator) bool {
	base, h := f.slot(loc)
	for i, salt := range filterSalts {
		if atomic.LoadUint64(&f.words[base+uint64(i)])&(1<<((h*salt)>>26)) == 0 {
			return false
		}
	}
	return true
}

// LocatorFilterStats describes the locator filter, for measurements and logs.
type LocatorFilterStats struct {
	Ready     bool          // false while the first build runs: every lookup goes to the index
	Loaded    bool          // the filter came from the file saved at the last clean Close
	Bytes     int           // memory held by the filter in use
	Capacity  uint64        // keys it is sized for (16 bits each)
	Added     uint64        // keys added since it was built, deleted ones included
	Deleted   int64         // appointments deleted since (their keys are still in the filter)
	BuildTime time.Duration // the last build from the index or load from the file
	Builds    int           // builds from the index since Open
}

// locatorFilters is a store's filter in use and, during a rebuild, the one being built.
type locatorFilters struct {
	db      *bolt.DB
	current atomic.Pointer[locFilter] // nil until the first build: everything may match
	pending atomic.Pointer[locFilter] // being built: writers add to it too
	deleted atomic.Int64

	mu        sync.Mutex
	building  bool
	closed    bool
	loaded    bool
	buildTime time.Duration
	builds    int
	ready     chan struct{} // closed when current is first set
	readyOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
}

// filterRegistry finds a database's filters from inside its transactions (openBuckets), so
// that every write path adds its locators whatever helper opened the transaction.
var filterRegistry sync.Map // *bolt.DB -> *locatorFilters

func filtersFor(db *bolt.DB) *locatorFilters {
	if v, ok := filterRegistry.Load(db); ok {
		return v.(*locatorFilters)
	}
	return nil
}

// addLocator records a locator whose index entry the current write transaction puts. It must
// be called before the transaction commits.
func (b *buckets) addLocator(loc teos.Locator) {
	lf := b.filters
	if lf == nil {
		return
	}
	// pending before current: a swap stores current first, so one of the two is the new filter.
	if p := lf.pending.Load(); p != nil {
		p.add(&loc)
	}
	if c := lf.current.Load(); c != nil {
		c.add(&loc)
	}
}

// locatorDeleted counts an appointment removed by the current write transaction.
func (b *buckets) locatorDeleted() {
	if b.filters != nil {
		b.filters.deleted.Add(1)
	}
}

// mayContain is false only if no appointment is stored under loc.
func (lf *locatorFilters) mayContain(loc *teos.Locator) bool {
	if lf == nil {
		return true
	}
	c := lf.current.Load()
	return c == nil || c.mayContain(loc)
}

// savedFilter is what Open finds of the filter saved at the last clean Close, read before
// Open writes anything.
type savedFilter struct {
	epoch []byte
	txid  int
	file  fileStamp
}

// fileStamp is the database file's modification time and size: any write moves them on.
type fileStamp struct{ mtime, size int64 }

func stampFile(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mtime: st.ModTime().UnixNano(), size: st.Size()}, nil
}

// peekLocatorFilter reads the saved filter's epoch and the file's last transaction id and
// stamp.
func peekLocatorFilter(db *bolt.DB) savedFilter {
	var sf savedFilter
	var err error
	if sf.file, err = stampFile(db.Path()); err != nil {
		return savedFilter{}
	}
	_ = viewTx(db, func(tx *bolt.Tx) error {
		sf.txid = tx.ID()
		if meta := tx.Bucket(bktMeta); meta != nil {
			sf.epoch = bytes.Clone(meta.Get(keyLocatorFilter))
		}
		return nil
	})
	return sf
}

// maybeStored returns a new slice of the locators that may have appointments.
func (lf *locatorFilters) maybeStored(locs []teos.Locator) []teos.Locator {
	out := make([]teos.Locator, 0, min(len(locs), 64))
	for i := range locs {
		if lf.mayContain(&locs[i]) {
			out = append(out, locs[i])
		}
	}
	return out
}

// openLocatorFilter registers the store's filters and loads the file saved at the last clean
// Close if nothing was written since (same epoch and transaction id); otherwise it starts a
// build in the background.
func openLocatorFilter(db *bolt.DB, saved savedFilter) *locatorFilters {
	lf := &locatorFilters{db: db, ready: make(chan struct{}), stop: make(chan struct{})}
	filterRegistry.Store(db, lf)
	t0 := time.Now()
	if f, err := readFilterFile(db.Path()+filterFileSuffix, saved); err == nil {
		lf.current.Store(f)
		lf.loaded, lf.buildTime = true, time.Since(t0)
		lf.readyOnce.Do(func() { close(lf.ready) })
		return lf
	}
	lf.startBuild()
	return lf
}

// startBuild builds a new filter from the index in the background unless one is being built.
func (lf *locatorFilters) startBuild() {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.building || lf.closed {
		return
	}
	lf.building = true
	lf.wg.Add(1)
	go func() {
		defer lf.wg.Done()
		err := lf.build()
		lf.mu.Lock()
		lf.building = false
		lf.mu.Unlock()
		_ = err // a failed build leaves the previous filter (or none) in use: slower, never wrong
	}()
}

var errFilterStopped = errors.New("store closing")

// filterBuildChunk is how many index keys a build reads per read transaction; a test makes
// filterBuildPause stop a build between two.
var (
	filterBuildChunk = 65536
	filterBuildPause func()
)

func (lf *locatorFilters) build() error {
	t0 := time.Now()
	var capacity uint64
	if err := viewTx(lf.db, func(tx *bolt.Tx) error {
		c, err := getCounts(tx.Bucket(bktMeta))
		capacity = uint64(max(c.appointments, 0))
		return err
	}); err != nil {
		return err
	}
	f := newLocFilter(capacity + capacity/4)
	lf.pending.Store(f)
	defer lf.pending.Store(nil)
	// Wait out a write transaction that started before pending was set and so may have added
	// its locators to current only: it commits before this takes the writer lock, and the
	// snapshot below sees it. Every later writer adds to f itself.
	if err := waitWrites(lf.db); err != nil {
		return err
	}
	deletedBefore := lf.deleted.Load()
	// The index is read in chunks, each in a read transaction of its own: one transaction
	// held for the whole scan (18 s at 10M cold) would make a commit that grows the file wait
	// in bbolt's remap for it, and every new read behind that commit, freezing the tower.
	// Entries put between chunks are added to f by their writers; deleted ones only leave
	// false positives.
	var (
		prev   teos.Locator
		seen   bool
		resume []byte
	)
	for done := false; !done; {
		err := viewTx(lf.db, func(tx *bolt.Tx) error {
			c := tx.Bucket(bktLocatorIdx).Cursor()
			var k []byte
			if resume == nil {
				k, _ = c.First()
			} else if k, _ = c.Seek(resume); k != nil && bytes.Equal(k, resume) {
				k, _ = c.Next() // resume was read by the previous chunk
			}
			for n := 0; ; k, _ = c.Next() {
				if k == nil {
					done = true
					return nil
				}
				if len(k) < teos.LocatorLen {
					return fmt.Errorf("%w: locator_idx key is %d bytes", ErrCorrupt, len(k))
				}
				if loc := teos.Locator(k[:teos.LocatorLen]); !seen || loc != prev {
					f.add(&loc)
					prev, seen = loc, true
				}
				if n++; n == filterBuildChunk {
					resume = append(resume[:0], k...)
					return nil
				}
			}
		})
		if err != nil {
			return err
		}
		if filterBuildPause != nil {
			filterBuildPause()
		}
		select {
		case <-lf.stop:
			return errFilterStopped
		default:
		}
	}
	lf.current.Store(f)
	lf.deleted.Add(-deletedBefore) // deletes seen before the snapshot are not in f
	lf.mu.Lock()
	lf.buildTime = time.Since(t0)
	lf.builds++
	lf.mu.Unlock()
	lf.readyOnce.Do(func() { close(lf.ready) })
	return nil
}

// maybeRebuild starts a rebuild when the filter in use is too full or too stale.
func (lf *locatorFilters) maybeRebuild() {
	if lf == nil {
		return
	}
	c := lf.current.Load()
	if c == nil {
		return
	}
	added := c.added.Load()
	if added > c.capacity*filterRebuildFull || uint64(max(lf.deleted.Load(), 0)) > added/filterRebuildStale+filterMinCapacity {
		lf.startBuild()
	}
}

func (lf *locatorFilters) stats() LocatorFilterStats {
	if lf == nil {
		return LocatorFilterStats{}
	}
	lf.mu.Lock()
	defer lf.mu.Unlock()
	s := LocatorFilterStats{Loaded: lf.loaded, BuildTime: lf.buildTime, Builds: lf.builds, Deleted: lf.deleted.Load()}
	if c := lf.current.Load(); c != nil {
		s.Ready, s.Bytes, s.Capacity, s.Added = true, 8*len(c.words), c.capacity, c.added.Load()
	}
	return s
}

// close stops a build and, if save and the filter is complete, saves it and puts its epoch in
// meta. It runs after the last write.
func (lf *locatorFilters) close(save bool) error {
	if lf == nil {
		return nil
	}
	lf.mu.Lock()
	if lf.closed { // Store.Close may be called twice
		lf.mu.Unlock()
		return nil
	}
	lf.closed = true
	close(lf.stop)
	lf.mu.Unlock()
	built := make(chan struct{})
	go func() { lf.wg.Wait(); close(built) }()
	if waitUnlessWedged(lf.db, built) != nil {
		// A build waiting for the writer lock damage left held never ends: the file is left
		// to the process's exit (closeDB says so), and the filter is not saved.
		return nil
	}
	defer filterRegistry.Delete(lf.db)
	c := lf.current.Load()
	if c == nil || !save {
		return nil
	}
	// The epoch goes in first and the file names it and that transaction's id: a crash in
	// between leaves a file Open refuses, and any later write moves the id on.
	saved := savedFilter{epoch: make([]byte, filterEpochLen)}
	if _, err := rand.Read(saved.epoch); err != nil {
		return err
	}
	err := updateTx(lf.db, func(tx *bolt.Tx) error {
		saved.txid = tx.ID()
		return tx.Bucket(bktMeta).Put(keyLocatorFilter, saved.epoch)
	})
	if err == nil {
		saved.file, err = stampFile(lf.db.Path()) // after the last write to the file
	}
	if err != nil {
		return fmt.Errorf("save locator filter: %w", err)
	}
	return writeFilterFile(lf.db.Path()+filterFileSuffix, c, saved)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func writeFilterFile(path string, f *locFilter, saved savedFilter) error {
	tmp := path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save locator filter: %w", err)
	}
	defer os.Remove(tmp) // no-op after the rename
	hdr := make([]byte, 0, filterHeaderLen)
	hdr = append(hdr, filterFileMagic...)
	hdr = append(hdr, saved.epoch...)
	for _, v := range []uint64{uint64(saved.txid), uint64(saved.file.mtime), uint64(saved.file.size), f.k0, f.k1, f.capacity, f.added.Load(), uint64(len(f.words))} {
		hdr = binary.LittleEndian.AppendUint64(hdr, v)
	}
	crc := crc32.Checksum(hdr, crcTable)
	buf := make([]byte, 0, 1<<16)
	write := func(p []byte) error {
		crc = crc32.Update(crc, crcTable, p)
		_, err := out.Write(p)
		return err
	}
	_, err = out.Write(hdr)
	for i := 0; err == nil && i < len(f.words); i++ {
		buf = binary.LittleEndian.AppendUint64(buf, f.words[i])
		if len(buf) == cap(buf) || i == len(f.words)-1 {
			err = write(buf)
			buf = buf[:0]
		}
	}
	if err == nil {
		_, err = out.Write(binary.LittleEndian.AppendUint32(nil, crc))
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("save locator filter: %w", err)
	}
	return nil
}

var errFilterFile = errors.New("locator filter file does not match")

// readFilterFile loads the filter saved as saved; any mismatch or damage is an error.
func readFilterFile(path string, saved savedFilter) (*locFilter, error) {
	if len(saved.epoch) != filterEpochLen {
		return nil, errFilterFile
	}
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, filterHeaderLen)
	if _, err := io.ReadFull(in, hdr); err != nil {
		return nil, err
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(hdr[24+8*i:]) }
	if string(hdr[:8]) != filterFileMagic || !bytes.Equal(hdr[8:24], saved.epoch) || u(0) != uint64(saved.txid) ||
		u(1) != uint64(saved.file.mtime) || u(2) != uint64(saved.file.size) {
		return nil, errFilterFile
	}
	f := &locFilter{k0: u(3), k1: u(4), capacity: u(5)}
	nwords := u(7)
	// nwords is bounded by the file before it is multiplied: a count whose ·8 wraps must not
	// pass the size check and reach make.
	if nwords == 0 || nwords%filterWordsPerBlk != 0 || nwords > uint64(st.Size())/8 ||
		st.Size() != int64(filterHeaderLen)+int64(nwords)*8+4 {
		return nil, errFilterFile
	}
	f.added.Store(u(6))
	f.nblocks = nwords / filterWordsPerBlk
	data := make([]byte, nwords*8+4)
	if _, err := io.ReadFull(in, data); err != nil {
		return nil, err
	}
	crc := crc32.Update(crc32.Checksum(hdr, crcTable), crcTable, data[:nwords*8])
	if crc != binary.LittleEndian.Uint32(data[nwords*8:]) {
		return nil, errFilterFile
	}
	f.words = make([]uint64, nwords)
	for i := range f.words {
		f.words[i] = binary.LittleEndian.Uint64(data[8*i:])
	}
	return f, nil
}

// WaitLocatorFilter blocks until the locator filter is in use (loaded or built) or done is
// closed; false if it is not (or never will be: Options.NoLocatorFilter). Lookups are correct before that, only slower on a cold index.
func (s *Store) WaitLocatorFilter(done <-chan struct{}) bool {
	if s.filters == nil {
		return false
	}
	select {
	case <-s.filters.ready:
		return true
	case <-done:
		return false
	}
}

// LocatorFilterStats reports the locator filter's state.
func (s *Store) LocatorFilterStats() LocatorFilterStats { return s.filters.stats() }
