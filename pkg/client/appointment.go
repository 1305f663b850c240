package client

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// NewAppointment builds the appointment for a revoked commitment: the locator is the first
// half of disputeTxID and the blob is the serialized penalty (witness included) encrypted
// under it (docs/PROTOCOL.md §3.2–3.3). disputeTxID is in internal order, as wire.MsgTx.TxHash
// and chainhash.NewHashFromStr (from display hex) return it.
func NewAppointment(disputeTxID chainhash.Hash, penalty *wire.MsgTx, toSelfDelay uint32) (teos.Appointment, error) {
	if penalty == nil {
		return teos.Appointment{}, errors.New("new appointment: nil penalty transaction")
	}
	var buf bytes.Buffer
	if err := penalty.Serialize(&buf); err != nil {
		return teos.Appointment{}, fmt.Errorf("serialize penalty: %w", err)
	}
	return teos.Appointment{
		Locator:       teos.NewLocator(disputeTxID),
		EncryptedBlob: wtcrypto.Encrypt(buf.Bytes(), disputeTxID),
		ToSelfDelay:   toSelfDelay,
	}, nil
}

// NewAppointmentFromHex is NewAppointment for a display-order txid hex string and a raw
// penalty transaction in hex, as bitcoind prints them.
func NewAppointmentFromHex(disputeTxID, penaltyRawTx string, toSelfDelay uint32) (teos.Appointment, error) {
	txid, err := chainhash.NewHashFromStr(disputeTxID)
	if err != nil || len(disputeTxID) != 2*chainhash.HashSize {
		return teos.Appointment{}, fmt.Errorf("commitment txid %q: want 64 hex characters", disputeTxID)
	}
	raw, err := hex.DecodeString(penaltyRawTx)
	if err != nil {
		return teos.Appointment{}, fmt.Errorf("penalty transaction: %w", err)
	}
	tx := new(wire.MsgTx)
	r := bytes.NewReader(raw)
	if err := tx.Deserialize(r); err != nil {
		return teos.Appointment{}, fmt.Errorf("penalty transaction: %w", err)
	}
	if r.Len() != 0 {
		return teos.Appointment{}, fmt.Errorf("penalty transaction: %d trailing bytes", r.Len())
	}
	return NewAppointment(*txid, tx, toSelfDelay)
}
