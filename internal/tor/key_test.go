package tor

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/durable/durabletest"
)

// testdata/onion_v3_sk is a key file as rust-teos writes it: torut's TorSecretKeyV3 bytes,
// that is ed25519-dalek's ExpandedSecretKey of the seed in onion_v3_sk.seed (SHA-512 of the
// seed, first half clamped), 64 raw bytes, no header. The address below was derived outside
// Go (Python's cryptography and hashlib) from that seed.
const fixtureAddress = "fgwlvykbxtfpbmrodkkngtily43b4utnbp7bfsexss6jgiuwnxluewad.onion"

func readFixture(t *testing.T) (file, seed []byte) {
	t.Helper()
	file, err := os.ReadFile("testdata/onion_v3_sk")
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.ReadFile("testdata/onion_v3_sk.seed")
	if err != nil {
		t.Fatal(err)
	}
	if seed, err = hex.DecodeString(strings.TrimSpace(string(s))); err != nil {
		t.Fatal(err)
	}
	return file, seed
}

func TestFixtureIsRustTeosFormat(t *testing.T) {
	file, seed := readFixture(t)
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	if !bytes.Equal(file, h[:]) {
		t.Fatalf("fixture is not the expanded key of its seed")
	}
	if got := ExpandSeed(seed); !bytes.Equal(got[:], file) {
		t.Fatalf("ExpandSeed = %x, want %x", got, file)
	}
}

func TestKeyAddress(t *testing.T) {
	file, seed := readFixture(t)
	key, err := ParseKey(file)
	if err != nil {
		t.Fatal(err)
	}
	// The public key through the standard library's seed path, not our scalar multiplication.
	want := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if pub := key.PublicKey(); !bytes.Equal(pub[:], want) {
		t.Fatalf("PublicKey = %x, want %x", pub, want)
	}
	if got := key.Address(); got != fixtureAddress {
		t.Fatalf("Address = %s, want %s", got, fixtureAddress)
	}
	if got := key.ServiceID(); got+".onion" != fixtureAddress {
		t.Fatalf("ServiceID = %s", got)
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey()
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	if _, err := ParseKey(a[:]); err != nil {
		t.Fatalf("a generated key does not parse: %v", err)
	}
	if id := a.ServiceID(); len(id) != 56 || strings.ToLower(id) != id {
		t.Fatalf("service id %q", id)
	}
}

func TestParseKeyRejects(t *testing.T) {
	file, _ := readFixture(t)
	unclamped := bytes.Clone(file)
	unclamped[0] |= 1
	highBit := bytes.Clone(file)
	highBit[31] |= 0x80
	// tor's own hs_ed25519_secret_key: a 32-byte header, then the same 64 bytes.
	torFile := append([]byte("== ed25519v1-secret: type0 ==\x00\x00\x00"), file...)
	for name, b := range map[string][]byte{
		"empty":                 nil,
		"text":                  []byte("random stuff"),
		"63 bytes":              file[:63],
		"65 bytes":              append(bytes.Clone(file), 0),
		"32-byte seed":          file[:32],
		"tor's key file format": torFile,
		"hex":                   []byte(hex.EncodeToString(file)),
		"unclamped scalar":      unclamped,
		"high bit set":          highBit,
	} {
		if _, err := ParseKey(b); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: err = %v, want ErrBadKey", name, err)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	var (
		key     SecretKey
		created bool
		err     error
	)
	syncs := durabletest.Syncs(t, func() { key, created, err = LoadOrCreateKey(dir) })
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	if len(syncs) == 0 || syncs[len(syncs)-1] != dir { // the tower's onion address survives a power loss
		t.Fatalf("flushed %v: want the key's directory last", syncs)
	}
	path := filepath.Join(dir, KeyFileName)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != KeySize || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %d bytes, mode %v", st.Size(), st.Mode().Perm())
	}
	again, created, err := LoadOrCreateKey(dir)
	if err != nil || created || again != key {
		t.Fatalf("second load: created=%v err=%v same=%v", created, err, again == key)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want only the key", len(entries))
	}
}

func TestLoadOrCreateKeyFixture(t *testing.T) {
	file, _ := readFixture(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyFileName), file, 0o644); err != nil {
		t.Fatal(err)
	}
	key, created, err := LoadOrCreateKey(dir)
	if err != nil || created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	if key.Address() != fixtureAddress {
		t.Fatalf("address %s, want %s", key.Address(), fixtureAddress)
	}
}

// A bad file is an error and is left exactly as it was: never a new key over it.
func TestLoadOrCreateKeyBadFileKept(t *testing.T) {
	for name, content := range map[string][]byte{
		"short":  []byte("random stuff"),
		"empty":  {},
		"longer": bytes.Repeat([]byte{0x40}, 96),
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, KeyFileName)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, created, err := LoadOrCreateKey(dir)
		if !errors.Is(err, ErrBadKey) || created {
			t.Fatalf("%s: created=%v err=%v, want ErrBadKey", name, created, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
		after, _ := os.ReadFile(path)
		if !bytes.Equal(after, content) {
			t.Fatalf("%s: key file changed", name)
		}
	}
}

func TestLoadOrCreateKeyUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be cannot be read as a key, nor replaced.
	if err := os.Mkdir(filepath.Join(dir, KeyFileName), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, created, err := LoadOrCreateKey(dir); err == nil || created {
		t.Fatalf("created=%v err=%v", created, err)
	}
}

// An endless file in the key's place (a link to /dev/zero) is refused after KeySize+1
// bytes, not read into memory.
func TestLoadOrCreateKeyEndlessFile(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, KeyFileName)); err != nil {
		t.Fatal(err)
	}
	if _, created, err := LoadOrCreateKey(dir); !errors.Is(err, ErrBadKey) || created {
		t.Fatalf("created=%v err=%v, want ErrBadKey", created, err)
	}
}

// A key file that is a link to a missing file (a backup volume not mounted) cannot be read
// and must not be replaced either: a clear error, not an endless retry.
func TestLoadOrCreateKeyDanglingLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "unmounted", KeyFileName)
	link := filepath.Join(dir, KeyFileName)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, created, err := LoadOrCreateKey(dir)
		if created {
			err = errors.New("reported a key created")
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("LoadOrCreateKey did not return for a dangling link")
	}
	if err == nil || !strings.Contains(err.Error(), link) {
		t.Fatalf("err = %v, want an error naming %s", err, link)
	}
	if _, serr := os.Lstat(target); !errors.Is(serr, fs.ErrNotExist) {
		t.Fatalf("a key was written through the link: %v", serr)
	}
	if fi, serr := os.Lstat(link); serr != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v", serr)
	}
}
