package httpapi

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
)

// TestReceiptMatchesWriteJSON: the hand-written receipt is byte for byte what encoding/json
// writes for the same reply, headers included, for ordinary and awkward values (signatures
// with quotes, control bytes, non-ASCII and invalid UTF-8 take writeJSON's path).
func TestReceiptMatchesWriteJSON(t *testing.T) {
	h := NewHandler(Config{}).(*handler)
	rng := rand.New(rand.NewPCG(1, 2))
	sigs := []string{
		"d7i5iau8rdrq49j8ts9ebnb3ynx4n3m6ebkfs8wmz8js3i5n9uwpzpqtxq7nsdyw1ua8p4goq6ma39a7afr5yrt3p6igyqaer6wdbrc5",
		"", "a\"b", `a\b`, "a\x00b", "a\x1fb", "\x7f", "é", "\u2028", "\xff", "<&>", "a/b",
	}
	for range 200 {
		sigs = append(sigs, string(randBytes(rng, rng.IntN(120))))
		printable := randBytes(rng, rng.IntN(120))
		for j := range printable {
			printable[j] = 0x20 + printable[j]%0x5f // ' ' to '~', quotes and backslashes included
		}
		sigs = append(sigs, string(printable))
	}
	for i, sig := range sigs {
		r := &commonv2.AddAppointmentResponse{
			Locator:            randBytes(rng, rng.IntN(20)),
			StartBlock:         rng.Uint32(),
			Signature:          sig,
			AvailableSlots:     rng.Uint32() >> uint(rng.IntN(32)),
			SubscriptionExpiry: rng.Uint32() >> uint(rng.IntN(32)),
		}
		if i == 0 {
			r = &commonv2.AddAppointmentResponse{} // zero values
		}
		want := httptest.NewRecorder()
		h.writeJSON(want, http.StatusOK, newAddAppointmentReply(r))
		got := httptest.NewRecorder()
		h.writeReceipt(got, r)
		if got.Body.String() != want.Body.String() || got.Code != want.Code ||
			got.Header().Get("Content-Type") != want.Header().Get("Content-Type") || len(got.Header()) != len(want.Header()) {
			t.Fatalf("signature %q: got %d %v %q, want %d %v %q", sig, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}
