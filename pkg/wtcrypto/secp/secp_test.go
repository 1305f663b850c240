package secp

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"runtime"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

var (
	curveN, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	curveP, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f", 16)
)

func be32(x *big.Int) (b [32]byte) {
	x.FillBytes(b[:])
	return b
}

// sameRecover runs both implementations and fails unless they agree exactly.
func sameRecover(t testing.TB, hash [32]byte, sig [64]byte, recid byte) ([33]byte, error) {
	t.Helper()
	gotA, errA := recoverImpl(&hash, &sig, recid)
	gotB, errB := pureRecover(&hash, &sig, recid)
	if errA != errB || gotA != gotB {
		t.Fatalf("hash %x sig %x recid %d: %s = %x, %v; pure-go = %x, %v",
			hash, sig, recid, implementation, gotA, errA, gotB, errB)
	}
	return gotA, errA
}

func sameSign(t testing.TB, hash, key [32]byte) ([64]byte, byte, error) {
	t.Helper()
	sigA, recA, errA := signImpl(&hash, &key)
	sigB, recB, errB := pureSign(&hash, &key)
	if errA != errB || sigA != sigB || recA != recB {
		t.Fatalf("hash %x key %x: %s = %x/%d, %v; pure-go = %x/%d, %v",
			hash, key, implementation, sigA, recA, errA, sigB, recB, errB)
	}
	return sigA, recA, errA
}

func randBytes(t testing.TB, b []byte) {
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
}

func TestImplementationName(t *testing.T) {
	if n := Implementation(); n != NameLibsecp256k1 && n != NamePureGo {
		t.Fatalf("Implementation() = %q", n)
	}
	t.Logf("implementation: %s", Implementation())
}

// Both implementations sign byte for byte alike (RFC 6979, low S) and recover the signer,
// also from the high-S twin of each signature.
func TestDifferentialSignRecover(t *testing.T) {
	for i := 0; i < 300; i++ {
		var hash, key [32]byte
		randBytes(t, hash[:])
		randBytes(t, key[:])
		sig, recid, err := sameSign(t, hash, key)
		if err != nil {
			continue // key >= n: both refused it
		}
		var k secp256k1.ModNScalar
		k.SetBytes(&key)
		var want [33]byte
		copy(want[:], secp256k1.NewPrivateKey(&k).PubKey().SerializeCompressed())

		s := new(big.Int).SetBytes(sig[32:])
		if s.Cmp(new(big.Int).Rsh(curveN, 1)) > 0 {
			t.Fatalf("high S from SignCompact: %x", sig)
		}
		if got, err := sameRecover(t, hash, sig, recid); err != nil || got != want {
			t.Fatalf("recover own signature = %x, %v; want %x", got, err, want)
		}
		// s -> n-s with the y parity bit flipped is the same signature, high S.
		high := sig
		hs := be32(new(big.Int).Sub(curveN, s))
		copy(high[32:], hs[:])
		if got, err := sameRecover(t, hash, high, recid^1); err != nil || got != want {
			t.Fatalf("recover high-S twin = %x, %v; want %x", got, err, want)
		}
		// Every other recovery id gives another key or none, the same from both.
		for r := byte(0); r < 6; r++ {
			if r != recid {
				if got, err := sameRecover(t, hash, sig, r); err == nil && got == want {
					t.Fatalf("recid %d also recovered the signer", r)
				}
			}
		}
		// Another hash never recovers the signer.
		other := hash
		other[0] ^= 1
		if got, _ := sameRecover(t, other, sig, recid); got == want {
			t.Fatal("signature recovered the signer for another hash")
		}
	}
}

func TestDifferentialRandomSignatures(t *testing.T) {
	ok := 0
	for i := 0; i < 2000; i++ {
		var hash [32]byte
		var sig [64]byte
		var rb [1]byte
		randBytes(t, hash[:])
		randBytes(t, sig[:])
		randBytes(t, rb[:])
		if _, err := sameRecover(t, hash, sig, rb[0]%5); err == nil {
			ok++
		}
	}
	// About half of random r values are x coordinates on the curve.
	if ok == 0 {
		t.Fatal("no random signature recovered a key: the test exercises nothing")
	}
}

// Edge values of r, s, recovery id and hash: identical answers, and the rejections the
// wire behaviour depends on.
func TestDifferentialEdgeCases(t *testing.T) {
	one := big.NewInt(1)
	nMinus1 := new(big.Int).Sub(curveN, one)
	pMinusN := new(big.Int).Sub(curveP, curveN)
	halfN := new(big.Int).Rsh(curveN, 1)
	max := new(big.Int).Sub(new(big.Int).Lsh(one, 256), one)
	values := []*big.Int{
		big.NewInt(0), one, big.NewInt(2), big.NewInt(7), halfN, new(big.Int).Add(halfN, one),
		nMinus1, curveN, new(big.Int).Add(curveN, one), new(big.Int).Sub(pMinusN, one), pMinusN,
		new(big.Int).Sub(curveP, one), curveP, max,
	}
	hashes := [][32]byte{{}, be32(one), be32(nMinus1), be32(curveN), be32(max)}
	var h [32]byte
	randBytes(t, h[:])
	hashes = append(hashes, h)

	mustFail := func(r, s *big.Int, recid byte) bool {
		return r.Sign() == 0 || s.Sign() == 0 || r.Cmp(curveN) >= 0 || s.Cmp(curveN) >= 0 || recid > 3 ||
			(recid >= 2 && r.Cmp(pMinusN) >= 0)
	}
	for _, hash := range hashes {
		for _, r := range values {
			for _, s := range values {
				var sig [64]byte
				rb, sb := be32(r), be32(s)
				copy(sig[:32], rb[:])
				copy(sig[32:], sb[:])
				for recid := byte(0); recid < 8; recid++ {
					_, err := sameRecover(t, hash, sig, recid)
					if mustFail(r, s, recid) && err == nil {
						t.Fatalf("r=%x s=%x recid=%d hash=%x recovered a key", r, s, recid, hash)
					}
				}
			}
		}
	}
}

func TestDifferentialBadKeys(t *testing.T) {
	var hash [32]byte
	randBytes(t, hash[:])
	for _, k := range []*big.Int{big.NewInt(0), curveN, new(big.Int).Add(curveN, big.NewInt(1)),
		new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))} {
		if _, _, err := sameSign(t, hash, be32(k)); err != ErrBadSecretKey {
			t.Fatalf("key %x: err = %v, want ErrBadSecretKey", k, err)
		}
	}
	if _, _, err := sameSign(t, hash, be32(new(big.Int).Sub(curveN, big.NewInt(1)))); err != nil {
		t.Fatalf("key n-1: %v", err)
	}
}

// A published vector (VECTORS: S1, key 1 over "test message"): both produce it.
func TestSignVectorBothImplementations(t *testing.T) {
	digest, _ := hex.DecodeString("63b62dc720ee1c303772a917b0ae5cf10075a0525ff45b097477a54bbb5c5aec")
	want, _ := hex.DecodeString("1fe350ac5567e3b06a5c3778ac286c263fac2b16faa7922d69d60df592b161e0ad376eba0b6e9d9f6b8bc6ccb173afc00c23a14dd9fa9ea0dec735c2d593a47728")
	var hash, key [32]byte
	copy(hash[:], digest)
	key[31] = 1
	sig, recid, err := sameSign(t, hash, key)
	if err != nil || 31+recid != want[0] || !bytes.Equal(sig[:], want[1:]) {
		t.Fatalf("sign = %x/%d, %v; want %x", sig, recid, err, want)
	}
}

// FuzzRecoverSign feeds arbitrary hashes, signatures, recovery ids and keys to both
// implementations: no panic (from the C library either) and identical answers.
func FuzzRecoverSign(f *testing.F) {
	f.Add(make([]byte, 32), make([]byte, 64), byte(0), make([]byte, 32))
	f.Add(bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0xff}, 64), byte(3), bytes.Repeat([]byte{0xff}, 32))
	f.Add([]byte{1}, []byte{2, 3}, byte(255), []byte{1})
	f.Fuzz(func(t *testing.T, hashIn, sigIn []byte, recid byte, keyIn []byte) {
		var hash, key [32]byte
		var sig [64]byte
		copy(hash[:], hashIn)
		copy(sig[:], sigIn)
		copy(key[:], keyIn)
		sameRecover(t, hash, sig, recid)
		if rs, rec, err := sameSign(t, hash, key); err == nil {
			var k secp256k1.ModNScalar
			k.SetBytes(&key)
			pub, err := sameRecover(t, hash, rs, rec)
			if err != nil || !bytes.Equal(pub[:], secp256k1.NewPrivateKey(&k).PubKey().SerializeCompressed()) {
				t.Fatalf("own signature recovered %x, %v", pub, err)
			}
		}
	})
}

// benchCPU runs op in b.Loop and also reports the thread's CPU time per op (cpu-ns/op), which
// the other processes on a shared machine do not inflate as they do wall time.
func benchCPU(b *testing.B, op func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	n := 0
	for b.Loop() {
		op()
		n++
	}
	if used := threadCPU() - start; used > 0 && n > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(n), "cpu-ns/op")
	}
}

func BenchmarkRecover(b *testing.B) {
	var hash, key [32]byte
	randBytes(b, hash[:])
	key[31] = 7
	sig, recid, _ := pureSign(&hash, &key)
	b.Run("impl="+NamePureGo, func(b *testing.B) {
		benchCPU(b, func() {
			if _, err := pureRecover(&hash, &sig, recid); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("impl="+implementation, func(b *testing.B) {
		benchCPU(b, func() {
			if _, err := recoverImpl(&hash, &sig, recid); err != nil {
				b.Fatal(err)
			}
		})
	})
}

func BenchmarkSign(b *testing.B) {
	var hash, key [32]byte
	randBytes(b, hash[:])
	key[31] = 7
	b.Run("impl="+NamePureGo, func(b *testing.B) { benchCPU(b, func() { _, _, _ = pureSign(&hash, &key) }) })
	b.Run("impl="+implementation, func(b *testing.B) { benchCPU(b, func() { _, _, _ = signImpl(&hash, &key) }) })
}
