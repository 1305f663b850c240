package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTruncatedFileIsRefused: a store file cut short (an incomplete copy, a restore from a
// broken backup) has pages its header counts past its end. bbolt maps the file and reads
// them: teosd died at start with SIGBUS and a dump of every goroutine, and so did the
// import's and database_url's checks of the file (Inspect). Both refuse it with a reason now,
// and leave it as it was.
func TestTruncatedFileIsRefused(t *testing.T) {
	for _, size := range []int64{2 * 4096, 3 * 4096, 20000} {
		path := filepath.Join(t.TempDir(), "teos.db")
		writeSampleStore(t, path)
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		before := readAll(t, path)

		if s, err := Open(path, nil); err == nil {
			s.Close()
			t.Fatalf("size %d: Open accepted a truncated file", size)
		} else if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cut short") {
			t.Fatalf("size %d: Open: %v, want ErrCorrupt saying the file was cut short", size, err)
		}
		if _, err := Inspect(path); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("size %d: Inspect: %v, want ErrCorrupt", size, err)
		}
		if after := readAll(t, path); string(after) != string(before) {
			t.Fatalf("size %d: the refused file was changed", size)
		}
	}

	// A whole file still opens, and a new one is still created.
	path := filepath.Join(t.TempDir(), "teos.db")
	writeSampleStore(t, path)
	if _, err := Inspect(path); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path, nil).Close()
	mustOpen(t, filepath.Join(t.TempDir(), "new.db"), nil).Close()
}
