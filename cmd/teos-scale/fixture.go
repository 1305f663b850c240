package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	bolt "go.etcd.io/bbolt"
)

// fixtureVersion changes whenever the generators below change, so an old file is rebuilt.
const fixtureVersion = 1

// fixtureMeta sits next to the database (path + ".fixture.json") once a fill completed.
type fixtureMeta struct {
	Version      int  `json:"version"`
	Appointments int  `json:"appointments"`
	Users        int  `json:"users"`
	Compacted    bool `json:"compacted"`
}

const (
	userSlots  = 10_000  // rust-teos's default subscription
	userExpiry = 1 << 30 // far beyond any block the tool connects
	startBlock = 800_000 // heights of the measured blocks start here
)

func metaPath(db string) string { return db + ".fixture.json" }

// readMeta returns the fixture description, or ok=false if there is no complete fixture.
func readMeta(db string) (m fixtureMeta, ok bool, err error) {
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		return m, false, nil
	}
	b, err := os.ReadFile(metaPath(db))
	if errors.Is(err, os.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("read fixture description: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false, fmt.Errorf("parse %s: %w", metaPath(db), err)
	}
	return m, true, nil
}

func writeMeta(db string, m fixtureMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(metaPath(db), b, 0o600); err != nil {
		return fmt.Errorf("write fixture description: %w", err)
	}
	return nil
}

// The generators are pure functions of an index, so the measuring process can rebuild any
// stored appointment's dispute without reading the database.

func digest(tag byte, i uint64) [32]byte {
	var b [9]byte
	b[0] = tag
	binary.BigEndian.PutUint64(b[1:], i)
	return sha256.Sum256(b[:])
}

func userID(u int) teos.UserID {
	var id teos.UserID
	id[0] = 0x02
	h := digest('u', uint64(u))
	copy(id[1:], h[:])
	return id
}

// disputeTx is appointment i's commitment transaction: one input, a to_local P2WSH output
// and a to_remote P2WPKH output, about the size of a real one.
func disputeTx(i uint64) *wire.MsgTx {
	prev := chainhash.Hash(digest('f', i))
	tx := wire.NewMsgTx(2)
	in := wire.NewTxIn(wire.NewOutPoint(&prev, 0), nil, wire.TxWitness{nil, filler(72, i), filler(72, i+1), filler(71, i+2)})
	in.Sequence = 0x80000000 | uint32(i&0xffffff)
	tx.AddTxIn(in)
	tx.AddTxOut(wire.NewTxOut(600_000, append([]byte{0x00, 0x20}, filler(32, i)...)))
	tx.AddTxOut(wire.NewTxOut(400_000, append([]byte{0x00, 0x14}, filler(20, i)...)))
	tx.LockTime = 0x20000000 | uint32(i&0xffffff)
	return tx
}

// penaltyTx sweeps the dispute's to_local output with a revocation witness.
func penaltyTx(dispute *wire.MsgTx, i uint64) *wire.MsgTx {
	txid := dispute.TxHash()
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&txid, 0), nil, wire.TxWitness{filler(73, i), {0x01}, filler(79, i)}))
	tx.AddTxOut(wire.NewTxOut(590_000, append([]byte{0x00, 0x14}, filler(20, i+3)...)))
	return tx
}

// filler returns n bytes that vary with seed.
func filler(n int, seed uint64) []byte {
	out := make([]byte, 0, n+32)
	for k := uint64(0); len(out) < n; k++ {
		h := digest('x', seed*31+k)
		out = append(out, h[:]...)
	}
	return out[:n]
}

func serialize(tx *wire.MsgTx) []byte {
	var buf bytes.Buffer
	buf.Grow(tx.SerializeSize())
	_ = tx.Serialize(&buf) // a bytes.Buffer never fails
	return buf.Bytes()
}

// appointment builds stored appointment i: its blob really is its penalty encrypted under its
// dispute's txid, so a block holding disputeTx(i) triggers a full hand-over. The user's
// signature is 104 zbase32 characters, as a real one, but not a valid signature: nothing on the
// block path checks it.
func appointment(i uint64, users int) *store.Appointment {
	d := disputeTx(i)
	txid := d.TxHash()
	sig := append(filler(64, i+7), 0x1f)
	return &store.Appointment{
		Appointment: teos.Appointment{
			Locator:       teos.NewLocator(txid),
			EncryptedBlob: wtcrypto.Encrypt(serialize(penaltyTx(d, i)), txid),
			ToSelfDelay:   144,
		},
		UserID:        userID(int(i % uint64(users))),
		UserSignature: wtcrypto.EncodeZBase32(sig),
		StartBlock:    startBlock - 1000 + uint32(i%1000),
	}
}

type fillResult struct {
	elapsed, firstBatch, lastBatch time.Duration
	fileBytes                      int64
	compaction                     time.Duration // 0 if not compacted
	compactedBytes                 int64
}

// fill writes n appointments owned by users users, batch per transaction, with fsync off until
// one final sync. A goroutine builds the next batch while the current one is written.
func fill(path string, n, users, batch int, compact bool, progress io.Writer) (fillResult, error) {
	var res fillResult
	_ = os.Remove(metaPath(path))
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("remove old fixture: %w", err)
	}
	s, err := store.Open(path, &store.Options{NoSync: true})
	if err != nil {
		return res, err
	}
	defer func() { _ = s.Close() }()

	batches := make(chan []*store.Appointment, 1)
	go func() {
		defer close(batches)
		for first := 0; first < n; first += batch {
			b := make([]*store.Appointment, 0, min(batch, n-first))
			for i := first; i < min(first+batch, n); i++ {
				b = append(b, appointment(uint64(i), users))
			}
			batches <- b
		}
	}()
	// Drain the producer on an early return so its goroutine ends.
	defer func() {
		for range batches {
		}
	}()

	userInfos := make(map[teos.UserID]store.UserInfo, users)
	for u := range users {
		userInfos[userID(u)] = store.UserInfo{AvailableSlots: userSlots, SubscriptionStart: startBlock - 1000, SubscriptionExpiry: userExpiry}
	}
	t0 := time.Now()
	done := 0
	for b := range batches {
		tb := time.Now()
		if err := s.BulkLoad(userInfos, b); err != nil {
			return res, err
		}
		userInfos = nil // stored by the first batch
		d := time.Since(tb)
		if done == 0 {
			res.firstBatch = d
		}
		res.lastBatch = d
		done += len(b)
		if progress != nil && ((done/batch)%10 == 0 || done == n) {
			el := time.Since(t0)
			fmt.Fprintf(progress, "  fill %d/%d  %.0fs  %.0f appts/s  last batch %.2fs\n",
				done, n, el.Seconds(), float64(done)/el.Seconds(), d.Seconds())
		}
	}
	if err := s.Sync(); err != nil {
		return res, err
	}
	res.elapsed = time.Since(t0)
	if err := s.Close(); err != nil {
		return res, fmt.Errorf("close fixture: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return res, err
	}
	res.fileBytes = st.Size()
	if compact {
		t1 := time.Now()
		if res.compactedBytes, err = compactFile(path); err != nil {
			return res, err
		}
		res.compaction = time.Since(t1)
	}
	return res, writeMeta(path, fixtureMeta{Version: fixtureVersion, Appointments: n, Users: users, Compacted: compact})
}

// compactFile rewrites the file with bbolt's compaction (full pages, no free pages) and
// returns the new size. Big fill transactions leave about one transaction's worth of pages
// free, which a tower grown by small transactions would not have; bbolt keeps that list in
// memory and rewrites it at every commit.
func compactFile(path string) (int64, error) {
	tmp := path + ".compact"
	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer src.Close()
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer dst.Close()
	if err := bolt.Compact(dst, src, 256<<20); err != nil {
		return 0, fmt.Errorf("compact %s: %w", path, err)
	}
	if err := dst.Sync(); err != nil {
		return 0, err
	}
	if err := errors.Join(dst.Close(), src.Close()); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
