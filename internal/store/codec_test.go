package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/teos"
)

func sampleAppointment() *Appointment {
	a := &Appointment{
		Appointment: teos.Appointment{
			Locator:       teos.Locator{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			EncryptedBlob: bytes.Repeat([]byte{0xab}, 300),
			ToSelfDelay:   42,
		},
		UserSignature: "rbn4pe7gu5s6ct8fmd5w6mj8q9yb8ch3dtuxo5ee7eqs5umkqr93hk9ga76pwnzodh3sqk4n8uqz6cxs6jrj4egq8jg6o",
		StartBlock:    700_001,
	}
	a.UserID[0] = 0x02
	a.UserID[32] = 0x99
	return a
}

func sampleTracker() *Tracker {
	return &Tracker{
		UUID:        teos.UUID{7},
		DisputeTx:   bytes.Repeat([]byte{1}, 200),
		PenaltyTx:   bytes.Repeat([]byte{2}, 150),
		DisputeTxID: chainhash.Hash{0xd1},
		PenaltyTxID: chainhash.Hash{0xe1},
		Height:      800_000,
		Confirmed:   true,
	}
}

func appointmentsEqual(x, y *Appointment) bool {
	return x.Locator == y.Locator && bytes.Equal(x.EncryptedBlob, y.EncryptedBlob) &&
		x.ToSelfDelay == y.ToSelfDelay && x.UserID == y.UserID &&
		x.UserSignature == y.UserSignature && x.StartBlock == y.StartBlock
}

func trackersEqual(x, y *Tracker) bool {
	return x.UUID == y.UUID && bytes.Equal(x.DisputeTx, y.DisputeTx) && bytes.Equal(x.PenaltyTx, y.PenaltyTx) &&
		x.DisputeTxID == y.DisputeTxID && x.PenaltyTxID == y.PenaltyTxID &&
		x.Height == y.Height && x.Confirmed == y.Confirmed
}

func TestAppointmentCodecRoundTrip(t *testing.T) {
	empty := sampleAppointment()
	empty.EncryptedBlob = nil
	empty.UserSignature = ""
	big := sampleAppointment()
	big.EncryptedBlob = bytes.Repeat([]byte{0x5a}, 70_000) // multi-byte length prefix
	for name, a := range map[string]*Appointment{"typical": sampleAppointment(), "empty fields": empty, "big blob": big} {
		t.Run(name, func(t *testing.T) {
			got, err := decodeAppointment(encodeAppointment(a))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !appointmentsEqual(got, a) {
				t.Fatalf("round trip changed the appointment: got %+v, want %+v", got, a)
			}
		})
	}
}

func TestAppointmentDecodeCopies(t *testing.T) {
	rec := encodeAppointment(sampleAppointment())
	a, err := decodeAppointment(rec)
	if err != nil {
		t.Fatal(err)
	}
	clear(rec) // as bbolt may reuse the page after the transaction
	if !appointmentsEqual(a, sampleAppointment()) {
		t.Fatal("decoded appointment aliases the input buffer")
	}
}

func TestTrackerCodecRoundTrip(t *testing.T) {
	unconfirmed := sampleTracker()
	unconfirmed.Confirmed = false
	unconfirmed.DisputeTx = nil
	for name, tr := range map[string]*Tracker{"confirmed": sampleTracker(), "mempool, empty tx": unconfirmed} {
		t.Run(name, func(t *testing.T) {
			got, err := decodeTracker(tr.UUID, encodeTracker(tr))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !trackersEqual(got, tr) {
				t.Fatalf("round trip changed the tracker: got %+v, want %+v", got, tr)
			}
		})
	}
}

func TestUserCodecRoundTrip(t *testing.T) {
	u := UserInfo{AvailableSlots: 10_000, SubscriptionStart: 100, SubscriptionExpiry: ^uint32(0)}
	rec := encodeUser(u)
	if len(rec) != userRecordLen || rec[0] != userRecordV1 {
		t.Fatalf("user record %x: want %d bytes starting with version %d", rec, userRecordLen, userRecordV1)
	}
	got, err := decodeUser(rec)
	if err != nil || got != u {
		t.Fatalf("decodeUser = %+v, %v; want %+v", got, err, u)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	appt := encodeAppointment(sampleAppointment())
	trk := encodeTracker(sampleTracker())
	// blob length prefix 300 = 0xac 0x02; the non-minimal form 0xac 0x82 0x00 means the same.
	nonMinimal := append(append(append([]byte(nil), appt[:appointmentHeadLen]...), 0xac, 0x82, 0x00), appt[appointmentHeadLen+2:]...)
	badFlag := bytes.Clone(trk)
	badFlag[1+64+4] = 2
	huge := append(bytes.Clone(appt[:appointmentHeadLen]), binary.AppendUvarint(nil, 1<<62)...)
	cases := map[string]func() error{
		"appointment empty":       func() error { _, err := decodeAppointment(nil); return err },
		"appointment version":     func() error { _, err := decodeAppointment(append([]byte{9}, appt[1:]...)); return err },
		"appointment truncated":   func() error { _, err := decodeAppointment(appt[:len(appt)-1]); return err },
		"appointment trailing":    func() error { _, err := decodeAppointment(append(bytes.Clone(appt), 0)); return err },
		"appointment non-minimal": func() error { _, err := decodeAppointment(nonMinimal); return err },
		"appointment huge length": func() error { _, err := decodeAppointment(huge); return err },
		"appointment head short":  func() error { _, _, _, err := appointmentHead(appt[:10]); return err },
		"tracker truncated":       func() error { _, err := decodeTracker(teos.UUID{}, trk[:40]); return err },
		"tracker bad bool":        func() error { _, err := decodeTracker(teos.UUID{}, badFlag); return err },
		"tracker trailing":        func() error { _, err := decodeTracker(teos.UUID{}, append(bytes.Clone(trk), 1)); return err },
		"user short":              func() error { _, err := decodeUser(encodeUser(UserInfo{})[:12]); return err },
		"user long":               func() error { _, err := decodeUser(append(encodeUser(UserInfo{}), 0)); return err },
		"user version":            func() error { _, err := decodeUser(make([]byte, userRecordLen)); return err },
	}
	for name, decode := range cases {
		t.Run(name, func(t *testing.T) {
			if err := decode(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// The fuzz targets check both directions: arbitrary bytes never panic and, when accepted,
// re-encode to exactly the same bytes (the decoders take only canonical input); and a value
// built from the fuzzer's arguments survives encode then decode.

func FuzzAppointmentCodec(f *testing.F) {
	f.Add(encodeAppointment(sampleAppointment()), []byte("blob"), "sig", uint32(42), uint32(7))
	f.Add([]byte{appointmentRecordV1}, []byte(nil), "", uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, raw, blob []byte, sig string, delay, start uint32) {
		if a, err := decodeAppointment(raw); err == nil {
			if re := encodeAppointment(a); !bytes.Equal(re, raw) {
				t.Fatalf("accepted %x but re-encodes to %x", raw, re)
			}
		}
		want := &Appointment{Appointment: teos.Appointment{EncryptedBlob: blob, ToSelfDelay: delay}, UserSignature: sig, StartBlock: start}
		copy(want.Locator[:], raw)
		copy(want.UserID[:], blob)
		got, err := decodeAppointment(encodeAppointment(want))
		if err != nil {
			t.Fatalf("decode(encode(x)): %v", err)
		}
		if !appointmentsEqual(got, want) {
			t.Fatalf("decode(encode(x)) = %+v, want %+v", got, want)
		}
	})
}

func FuzzTrackerCodec(f *testing.F) {
	f.Add(encodeTracker(sampleTracker()), []byte("dispute"), []byte("penalty"), uint32(5), true)
	f.Add([]byte{trackerRecordV1}, []byte(nil), []byte(nil), uint32(0), false)
	f.Fuzz(func(t *testing.T, raw, dispute, penalty []byte, height uint32, confirmed bool) {
		id := teos.UUID{3}
		if tr, err := decodeTracker(id, raw); err == nil {
			if re := encodeTracker(tr); !bytes.Equal(re, raw) {
				t.Fatalf("accepted %x but re-encodes to %x", raw, re)
			}
		}
		want := &Tracker{UUID: id, DisputeTx: dispute, PenaltyTx: penalty, Height: height, Confirmed: confirmed}
		copy(want.DisputeTxID[:], raw)
		copy(want.PenaltyTxID[:], penalty)
		got, err := decodeTracker(id, encodeTracker(want))
		if err != nil {
			t.Fatalf("decode(encode(x)): %v", err)
		}
		if !trackersEqual(got, want) {
			t.Fatalf("decode(encode(x)) = %+v, want %+v", got, want)
		}
	})
}

func FuzzUserCodec(f *testing.F) {
	f.Add(encodeUser(UserInfo{AvailableSlots: 1, SubscriptionStart: 2, SubscriptionExpiry: 3}), uint32(10), uint32(20), uint32(30))
	f.Add([]byte{}, uint32(0), uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, raw []byte, slots, start, expiry uint32) {
		if u, err := decodeUser(raw); err == nil {
			if re := encodeUser(u); !bytes.Equal(re, raw) {
				t.Fatalf("accepted %x but re-encodes to %x", raw, re)
			}
		}
		want := UserInfo{AvailableSlots: slots, SubscriptionStart: start, SubscriptionExpiry: expiry}
		if got, err := decodeUser(encodeUser(want)); err != nil || got != want {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", want, got, err)
		}
	})
}
