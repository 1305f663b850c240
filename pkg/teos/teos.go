// Package teos holds the types, constants and byte formats that a teos v0.2 tower and its
// clients share: identifiers, appointments, receipts and the public API's error codes.
package teos

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck // the protocol fixes RIPEMD-160
)

const (
	// UserIDLen is the size of a compressed secp256k1 public key.
	UserIDLen = 33
	// LocatorLen is the size of a locator: half a txid.
	LocatorLen = 16
	// UUIDLen is the size of a RIPEMD-160 digest.
	UUIDLen = 20
	// EncryptedBlobMaxSize is the slot unit: one slot covers this many bytes of blob.
	EncryptedBlobMaxSize = 2048
	// IrrevocablyResolved is the number of confirmations after which a penalty is final.
	IrrevocablyResolved = 100
	// ConfirmationsBeforeRetry is how long a penalty may sit unconfirmed before it is re-sent.
	ConfirmationsBeforeRetry = 6
)

// ErrInvalidUserID is returned when bytes are not a compressed public key on the curve.
var ErrInvalidUserID = errors.New("not a valid compressed public key")

// UserID is a user's (or the tower's) compressed secp256k1 public key.
type UserID [UserIDLen]byte

// String returns the lower-case hex of the key.
func (u UserID) String() string { return hex.EncodeToString(u[:]) }

// ParseUserID checks that b is a 33-byte compressed key on the curve.
func ParseUserID(b []byte) (UserID, error) {
	var u UserID
	if len(b) != UserIDLen || (b[0] != 0x02 && b[0] != 0x03) {
		return u, ErrInvalidUserID
	}
	if _, err := btcec.ParsePubKey(b); err != nil {
		return u, ErrInvalidUserID
	}
	copy(u[:], b)
	return u, nil
}

// UserIDFromPubKey returns the compressed serialization of pk.
func UserIDFromPubKey(pk *btcec.PublicKey) UserID {
	var u UserID
	copy(u[:], pk.SerializeCompressed())
	return u
}

// Locator identifies the dispute transaction an appointment waits for: the first half of its
// txid in internal (hashed) byte order.
type Locator [LocatorLen]byte

// String returns the lower-case hex of the locator.
func (l Locator) String() string { return hex.EncodeToString(l[:]) }

// NewLocator derives the locator of the transaction whose txid is txid (internal order, as
// chainhash.Hash stores it).
func NewLocator(txid chainhash.Hash) Locator {
	var l Locator
	copy(l[:], txid[:LocatorLen])
	return l
}

// LocatorFromBytes copies b into a Locator; b must be LocatorLen bytes.
func LocatorFromBytes(b []byte) (Locator, error) {
	var l Locator
	if len(b) != LocatorLen {
		return l, fmt.Errorf("locator must be %d bytes, got %d", LocatorLen, len(b))
	}
	copy(l[:], b)
	return l, nil
}

// UUID identifies one user's appointment for one locator: RIPEMD160(locator || user_id).
type UUID [UUIDLen]byte

// String returns the lower-case hex of the UUID.
func (u UUID) String() string { return hex.EncodeToString(u[:]) }

// Appointment is what a user hands the tower: a locator and the encrypted penalty.
type Appointment struct {
	Locator       Locator
	EncryptedBlob []byte
	ToSelfDelay   uint32
}

// SignedBytes returns the message a user signs to send this appointment:
// locator || encrypted_blob || be32(to_self_delay).
func (a *Appointment) SignedBytes() []byte {
	b := make([]byte, 0, LocatorLen+len(a.EncryptedBlob)+4)
	b = append(b, a.Locator[:]...)
	b = append(b, a.EncryptedBlob...)
	return binary.BigEndian.AppendUint32(b, a.ToSelfDelay)
}

// Slots is the number of subscription slots a blob of blobLen bytes takes: ceil(len/2048).
func Slots(blobLen int) uint32 {
	return uint32((blobLen + EncryptedBlobMaxSize - 1) / EncryptedBlobMaxSize)
}

// GetAppointmentMessage is the text a user signs to query the appointment at loc.
func GetAppointmentMessage(loc Locator) []byte {
	return []byte("get appointment " + loc.String())
}

// GetSubscriptionInfoMessage is the text a user signs to query their subscription.
var GetSubscriptionInfoMessage = []byte("get subscription info")

// RegistrationReceipt is what the tower signs when a user registers or renews.
type RegistrationReceipt struct {
	UserID             UserID
	AvailableSlots     uint32
	SubscriptionStart  uint32
	SubscriptionExpiry uint32
}

// SignedBytes returns user_id || be32(slots) || be32(start) || be32(expiry) (45 bytes).
func (r *RegistrationReceipt) SignedBytes() []byte {
	b := make([]byte, 0, UserIDLen+12)
	b = append(b, r.UserID[:]...)
	b = binary.BigEndian.AppendUint32(b, r.AvailableSlots)
	b = binary.BigEndian.AppendUint32(b, r.SubscriptionStart)
	return binary.BigEndian.AppendUint32(b, r.SubscriptionExpiry)
}

// AppointmentReceiptBytes returns what the tower signs to accept an appointment: the user's
// zbase32 signature text exactly as received, followed by be32(start_block).
func AppointmentReceiptBytes(userSignature string, startBlock uint32) []byte {
	b := make([]byte, 0, len(userSignature)+4)
	b = append(b, userSignature...)
	return binary.BigEndian.AppendUint32(b, startBlock)
}

// NewUUID returns RIPEMD160(locator || user_id), with no SHA-256 first (unlike Hash160).
func NewUUID(loc Locator, user UserID) UUID {
	h := ripemd160.New()
	h.Write(loc[:])
	h.Write(user[:])
	var id UUID
	copy(id[:], h.Sum(nil))
	return id
}
