package wtcrypto_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// docs/VECTORS.md §3.
const (
	s1SK     = "0000000000000000000000000000000000000000000000000000000000000001"
	s1Pubkey = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	s1Msg    = "test message"
	s1Digest = "63b62dc720ee1c303772a917b0ae5cf10075a0525ff45b097477a54bbb5c5aec"
	s1Sig    = "d9tibmnic9t5y41hg7hkakdcra94akas9ku3rmmj4ag9mritc8ok4p5qzefs78c9pqfhpuftqqzhydbdwfg7u6w6wdxcqpqn4sj4e73e"
	s1Raw    = "1fe350ac5567e3b06a5c3778ac286c263fac2b16faa7922d69d60df592b161e0ad376eba0b6e9d9f6b8bc6ccb173afc00c23a14dd9fa9ea0dec735c2d593a47728"

	s3Msg    = "Test message"
	s3Sig    = "rbwewwyr4zem3w5t39fd1xyeamfzbmfgztwm4b613ybjtmoeod5kazaxqo3akn3ae75bqi3aqeds8cs6n43w4p58ft34itjnnb61bp54"
	s3Raw    = "20688a5004d5d0bcd371cfca393c08c2cb70aca6bc68bd07d2c80298ae0880f6ac5f0f7433850b384776175738720763b2de16b34d37672c73aac522107d20b77a"
	s3Pubkey = "02b821c749295d5c24f6166ae77d8353eaa36fc4e47326670c6d2522cbd344bab9"

	s4SK     = "24e9a981580d27d9277071a8381542e89a7c124868c4e862a13595dc75c6922f"
	s4Pubkey = "0235293db86c6aaa74aff69ebacad8471d5242901ea9f6a0341a8dca331875e62c"
	s4Msg    = "Test message"
	s4Sig    = "d7kg5hdwsqgrzmbthcwjm3fqnrhni1qru9rh6hstr8rqhjdmtwbkszd11tobcmk1kiojbegyrxeot9yy7378daofptdahgxu1yknrz9p"

	s5Msg    = "Hey, it's me"
	s5BadSig = "ddbfb019e4d56155b4175066c2b615ab765d317ae7996d188b4a5fae4cc394adf98fef46034d0553149392219ca6d37dca9abdfa6366a8e54b28f19d3e5efa8a14b556205dc7f33a"

	// secp256k1 group order n.
	curveOrder = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
)

var recoveryVectors = []struct{ name, msg, sig, pubkey string }{
	{"S1", s1Msg, s1Sig, s1Pubkey},
	{"S2a", "is this compatible?", "rbgfioj114mh48d8egqx8o9qxqw4fmhe8jbeeabdioxnjk8z3t1ma1hu1fiswpakgucwwzwo6ofycffbsqusqdimugbh41n1g698hr9t", "02b80cabdf82638aac86948e4c06e82064f547768dcef977677b9ea931ea75bab5"},
	{"S2b", "hi", "rnrphcjswusbacjnmmmrynh9pqip7sy5cx695h6mfu64iac6qmcmsd8xnsyczwmpqp9shqkth3h4jmkgyqu5z47jfn1q7gpxtaqpx4xg", "02de60d194e1ca5947b59fe8e2efd6aadeabfb67f2e89e13ae1a799c1e08e4a43b"},
	{"S2c", "hi", "ry8bbsopmduhxy3dr5d9ekfeabdpimfx95kagdem7914wtca79jwamtbw4rxh69hg7n6x9ty8cqk33knbxaqftgxsfsaeprxkn1k48p3", "022b8ece90ee891cbcdac0c1cc6af46b73c47212d8defbce80265ac81a6b794931"},
	{"S3", s3Msg, s3Sig, s3Pubkey},
	{"S4", s4Msg, s4Sig, s4Pubkey},
}

func TestSignedMessageDigest(t *testing.T) {
	// An independent check that S1.digest is what the vectors sign; SignMessage matching
	// S1.zbase32 below then pins the digest the package uses.
	first := sha256.Sum256([]byte("Lightning Signed Message:" + s1Msg))
	second := sha256.Sum256(first[:])
	if got := hex.EncodeToString(second[:]); got != s1Digest {
		t.Fatalf("digest = %s, want %s", got, s1Digest)
	}
}

func TestSignMessageVectors(t *testing.T) {
	for _, tc := range []struct{ name, sk, msg, want string }{
		{"S1", s1SK, s1Msg, s1Sig},
		{"S4", s4SK, s4Msg, s4Sig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := wtcrypto.SignMessage([]byte(tc.msg), mustPrivKey(t, tc.sk)); got != tc.want {
				t.Fatalf("SignMessage = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRecoverUserIDVectors(t *testing.T) {
	for _, v := range recoveryVectors {
		t.Run(v.name, func(t *testing.T) {
			want := mustUserID(t, v.pubkey)
			for _, sig := range []string{v.sig, strings.ToUpper(v.sig)} {
				got, err := wtcrypto.RecoverUserID([]byte(v.msg), sig)
				if err != nil {
					t.Fatalf("RecoverUserID(%q): %v", sig, err)
				}
				if got != want {
					t.Fatalf("RecoverUserID(%q) = %s, want %s", sig, got, want)
				}
				if !wtcrypto.VerifySignature([]byte(v.msg), sig, want) {
					t.Fatalf("VerifySignature(%q) = false", sig)
				}
			}
			// Another message recovers some other key, never the signer.
			if wtcrypto.VerifySignature([]byte(v.msg+"!"), v.sig, want) {
				t.Fatal("signature verified for a different message")
			}
		})
	}
}

func TestS4PubkeyMatchesSecret(t *testing.T) {
	sk := mustPrivKey(t, s4SK)
	if got := teos.UserIDFromPubKey(sk.PubKey()); got != mustUserID(t, s4Pubkey) {
		t.Fatalf("pubkey of S4.sk = %s, want %s", got, s4Pubkey)
	}
}

// sigWith returns S1's raw signature with the header byte replaced.
func sigWith(t *testing.T, edit func(raw []byte) []byte) string {
	t.Helper()
	return wtcrypto.EncodeZBase32(edit(mustHex(t, s1Raw)))
}

func TestRecoverUserIDRejects(t *testing.T) {
	header := func(h byte) func([]byte) []byte {
		return func(raw []byte) []byte { raw[0] = h; return raw }
	}
	n := mustHex(t, curveOrder)
	for _, tc := range []struct{ name, msg, sig string }{
		{"S5 not zbase32", s5Msg, s5BadSig},
		{"empty", s1Msg, ""},
		{"bad zbase32 length", s1Msg, s1Sig[:103]},
		{"bad character", s1Msg, "0" + s1Sig[1:]},
		{"64 bytes", s1Msg, sigWith(t, func(raw []byte) []byte { return raw[:64] })},
		{"66 bytes", s1Msg, sigWith(t, func(raw []byte) []byte { return append(raw, 0) })},
		{"header 27 uncompressed", s1Msg, sigWith(t, header(27))},
		{"header 30 uncompressed", s1Msg, sigWith(t, header(30))},
		{"header 35", s1Msg, sigWith(t, header(35))},
		{"header 0", s1Msg, sigWith(t, header(0))},
		{"r zero", s1Msg, sigWith(t, func(raw []byte) []byte { clear(raw[1:33]); return raw })},
		{"s zero", s1Msg, sigWith(t, func(raw []byte) []byte { clear(raw[33:]); return raw })},
		{"r equals n", s1Msg, sigWith(t, func(raw []byte) []byte { copy(raw[1:33], n); return raw })},
		{"s equals n", s1Msg, sigWith(t, func(raw []byte) []byte { copy(raw[33:], n); return raw })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := wtcrypto.RecoverUserID([]byte(tc.msg), tc.sig)
			if !errors.Is(err, wtcrypto.ErrInvalidSignature) {
				t.Fatalf("RecoverUserID = %s, %v; want ErrInvalidSignature", id, err)
			}
			if wtcrypto.VerifySignature([]byte(tc.msg), tc.sig, mustUserID(t, s1Pubkey)) {
				t.Fatal("VerifySignature = true")
			}
		})
	}
}

func TestBadZBase32SignatureWrapsBothErrors(t *testing.T) {
	_, err := wtcrypto.RecoverUserID([]byte(s5Msg), s5BadSig)
	if !errors.Is(err, wtcrypto.ErrInvalidSignature) || !errors.Is(err, wtcrypto.ErrInvalidZBase32) {
		t.Fatalf("err = %v, want both ErrInvalidSignature and ErrInvalidZBase32", err)
	}
}

func TestRegistrationReceiptRoundTrip(t *testing.T) {
	tower := mustPrivKey(t, s4SK)
	towerID := teos.UserIDFromPubKey(tower.PubKey())
	r := teos.RegistrationReceipt{
		UserID:             mustUserID(t, s1Pubkey),
		AvailableSlots:     21,
		SubscriptionStart:  100,
		SubscriptionExpiry: 520,
	}
	msg := r.SignedBytes()
	if len(msg) != 45 {
		t.Fatalf("signed bytes length %d, want 45", len(msg))
	}
	sig := wtcrypto.SignMessage(msg, tower)
	got, err := wtcrypto.RecoverUserID(msg, sig)
	if err != nil || got != towerID {
		t.Fatalf("RecoverUserID = %s, %v; want tower %s", got, err, towerID)
	}
	if !wtcrypto.VerifySignature(msg, sig, towerID) {
		t.Fatal("receipt does not verify against the tower id")
	}
	if wtcrypto.VerifySignature(msg, sig, r.UserID) {
		t.Fatal("receipt verifies against the wrong key")
	}
	r.AvailableSlots++ // a client must notice a receipt that does not match its fields
	if wtcrypto.VerifySignature(r.SignedBytes(), sig, towerID) {
		t.Fatal("receipt verifies for different slots")
	}
}

func TestAppointmentReceiptRoundTrip(t *testing.T) {
	// docs/VECTORS.md §7: user_signature "user_sig", start_block 42.
	msg := teos.AppointmentReceiptBytes("user_sig", 42)
	if want := mustHex(t, "757365725f7369670000002a"); !bytes.Equal(msg, want) {
		t.Fatalf("AppointmentReceiptBytes = %x, want %x", msg, want)
	}
	tower, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	towerID := teos.UserIDFromPubKey(tower.PubKey())
	for _, m := range [][]byte{msg, teos.AppointmentReceiptBytes(s1Sig, 800_000)} {
		sig := wtcrypto.SignMessage(m, tower)
		if len(sig) != 104 {
			t.Fatalf("signature length %d, want 104", len(sig))
		}
		if got, err := wtcrypto.RecoverUserID(m, sig); err != nil || got != towerID {
			t.Fatalf("RecoverUserID = %s, %v; want %s", got, err, towerID)
		}
	}
}

func TestSignRecoverRandomKeys(t *testing.T) {
	for i := range 20 {
		sk, err := btcec.NewPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte{byte(i), 'x'}
		got, err := wtcrypto.RecoverUserID(msg, wtcrypto.SignMessage(msg, sk))
		if want := teos.UserIDFromPubKey(sk.PubKey()); err != nil || got != want {
			t.Fatalf("key %d: recovered %s, %v; want %s", i, got, err, want)
		}
	}
}

func BenchmarkSignMessage(b *testing.B) {
	sk := mustPrivKey(b, s4SK)
	msg := teos.AppointmentReceiptBytes(s1Sig, 800_000)
	for b.Loop() {
		wtcrypto.SignMessage(msg, sk)
	}
}

func BenchmarkRecoverUserID(b *testing.B) {
	msg := []byte(s1Msg)
	for b.Loop() {
		if _, err := wtcrypto.RecoverUserID(msg, s1Sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignPlusRecover is the crypto cost of one add_appointment: authenticate the user,
// then sign the receipt.
func BenchmarkSignPlusRecover(b *testing.B) {
	tower := mustPrivKey(b, s4SK)
	msg := []byte(s1Msg)
	for b.Loop() {
		if _, err := wtcrypto.RecoverUserID(msg, s1Sig); err != nil {
			b.Fatal(err)
		}
		wtcrypto.SignMessage(teos.AppointmentReceiptBytes(s1Sig, 800_000), tower)
	}
}
