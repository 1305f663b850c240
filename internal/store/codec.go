package store

import (
	"encoding/binary"
	"fmt"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/teos"
)

// Record versions: the first byte of every value, so a later format can be told apart.
const (
	userRecordV1        = 1
	appointmentRecordV1 = 1
	trackerRecordV1     = 1
)

const (
	userRecordLen = 1 + 3*4
	// appointmentHeadLen covers version, locator and user id: enough to find a record's indexes.
	appointmentHeadLen = 1 + teos.LocatorLen + teos.UserIDLen
)

// encodeUser: v1 || be32 slots || be32 start || be32 expiry.
func encodeUser(u UserInfo) []byte {
	b := make([]byte, 0, userRecordLen)
	b = append(b, userRecordV1)
	b = binary.BigEndian.AppendUint32(b, u.AvailableSlots)
	b = binary.BigEndian.AppendUint32(b, u.SubscriptionStart)
	return binary.BigEndian.AppendUint32(b, u.SubscriptionExpiry)
}

func decodeUser(b []byte) (UserInfo, error) {
	r := reader{b: b}
	r.version(userRecordV1)
	u := UserInfo{AvailableSlots: r.u32(), SubscriptionStart: r.u32(), SubscriptionExpiry: r.u32()}
	if err := r.finish("user"); err != nil {
		return UserInfo{}, err
	}
	return u, nil
}

// encodeAppointment: v1 || locator(16) || user_id(33) || uvarint len || blob || be32 to_self_delay ||
// uvarint len || user_signature || be32 start_block. The UUID is the key, so it is not repeated.
func encodeAppointment(a *Appointment) []byte {
	n := appointmentHeadLen + 2*binary.MaxVarintLen64 + len(a.EncryptedBlob) + len(a.UserSignature) + 8
	b := make([]byte, 0, n)
	b = append(b, appointmentRecordV1)
	b = append(b, a.Locator[:]...)
	b = append(b, a.UserID[:]...)
	b = binary.AppendUvarint(b, uint64(len(a.EncryptedBlob)))
	b = append(b, a.EncryptedBlob...)
	b = binary.BigEndian.AppendUint32(b, a.ToSelfDelay)
	b = binary.AppendUvarint(b, uint64(len(a.UserSignature)))
	b = append(b, a.UserSignature...)
	return binary.BigEndian.AppendUint32(b, a.StartBlock)
}

// decodeAppointment copies everything out of b, so the result outlives the transaction.
func decodeAppointment(b []byte) (*Appointment, error) {
	r := reader{b: b}
	r.version(appointmentRecordV1)
	a := &Appointment{}
	copy(a.Locator[:], r.fixed(teos.LocatorLen))
	copy(a.UserID[:], r.fixed(teos.UserIDLen))
	a.EncryptedBlob = r.bytes()
	a.ToSelfDelay = r.u32()
	a.UserSignature = string(r.view())
	a.StartBlock = r.u32()
	if err := r.finish("appointment"); err != nil {
		return nil, err
	}
	return a, nil
}

// appointmentHead reads what deletions need (locator, owner, blob size) without copying the blob.
func appointmentHead(b []byte) (loc teos.Locator, user teos.UserID, blobLen int, err error) {
	r := reader{b: b}
	r.version(appointmentRecordV1)
	copy(loc[:], r.fixed(teos.LocatorLen))
	copy(user[:], r.fixed(teos.UserIDLen))
	blobLen = len(r.view())
	if r.err != nil {
		return loc, user, 0, fmt.Errorf("appointment: %w", r.err)
	}
	return loc, user, blobLen, nil
}

// encodeTracker: v1 || dispute_txid(32) || penalty_txid(32) || be32 height || confirmed(0|1) ||
// uvarint len || dispute_tx || uvarint len || penalty_tx. Fixed fields first; the UUID is the key.
func encodeTracker(t *Tracker) []byte {
	n := 1 + 2*chainhash.HashSize + 5 + 2*binary.MaxVarintLen64 + len(t.DisputeTx) + len(t.PenaltyTx)
	b := make([]byte, 0, n)
	b = append(b, trackerRecordV1)
	b = append(b, t.DisputeTxID[:]...)
	b = append(b, t.PenaltyTxID[:]...)
	b = binary.BigEndian.AppendUint32(b, t.Height)
	confirmed := byte(0)
	if t.Confirmed {
		confirmed = 1
	}
	b = append(b, confirmed)
	b = binary.AppendUvarint(b, uint64(len(t.DisputeTx)))
	b = append(b, t.DisputeTx...)
	b = binary.AppendUvarint(b, uint64(len(t.PenaltyTx)))
	return append(b, t.PenaltyTx...)
}

func decodeTracker(id teos.UUID, b []byte) (*Tracker, error) {
	r := reader{b: b}
	r.version(trackerRecordV1)
	t := &Tracker{UUID: id}
	copy(t.DisputeTxID[:], r.fixed(chainhash.HashSize))
	copy(t.PenaltyTxID[:], r.fixed(chainhash.HashSize))
	t.Height = r.u32()
	t.Confirmed = r.flag()
	t.DisputeTx = r.bytes()
	t.PenaltyTx = r.bytes()
	if err := r.finish("tracker"); err != nil {
		return nil, err
	}
	return t, nil
}

// reader decodes strictly: the first problem sticks, and later reads return zero values, so a
// decoder is a straight list of reads followed by one check. Only canonical encodings are
// accepted, which keeps encode(decode(b)) == b.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

// fixed returns the next n bytes, aliasing the input.
func (r *reader) fixed(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("need %d bytes, have %d", n, len(r.b))
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) version(want byte) {
	if v := r.fixed(1); v != nil && v[0] != want {
		r.fail("unknown record version %d", v[0])
	}
}

func (r *reader) u32() uint32 {
	v := r.fixed(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *reader) flag() bool {
	v := r.fixed(1)
	if v == nil {
		return false
	}
	if v[0] > 1 {
		r.fail("bad boolean %d", v[0])
	}
	return v[0] == 1
}

// view returns a uvarint-length-prefixed field, aliasing the input.
func (r *reader) view() []byte {
	if r.err != nil {
		return nil
	}
	n, size := binary.Uvarint(r.b)
	switch {
	case size <= 0:
		r.fail("bad length prefix")
		return nil
	case size > 1 && r.b[size-1] == 0: // a longer encoding than needed
		r.fail("non-minimal length prefix")
		return nil
	case n > uint64(len(r.b)-size):
		r.fail("length %d exceeds the %d bytes left", n, len(r.b)-size)
		return nil
	}
	v := r.b[size : size+int(n)]
	r.b = r.b[size+int(n):]
	return v
}

// bytes is view copied into a fresh slice (nil when empty).
func (r *reader) bytes() []byte {
	v := r.view()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (r *reader) finish(what string) error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("%s: %w", what, r.err)
	}
	return nil
}
