package durable_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/teos-go/teos/internal/durable"
	"github.com/teos-go/teos/internal/durable/durabletest"
)

// after reports whether want appears in syncs after the first element matching first.
func after(syncs []string, first func(string) bool, want string) bool {
	i := slices.IndexFunc(syncs, first)
	return i >= 0 && slices.Contains(syncs[i+1:], want)
}

func TestMkdirAllSyncsEachParent(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	var created []string
	var err error
	syncs := durabletest.Syncs(t, func() { created, err = durable.MkdirAll(dir, 0o700) })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{dir, filepath.Join(root, "a", "b"), filepath.Join(root, "a")}
	if !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	// Each new name is flushed in its parent, top down.
	if wantSyncs := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}; !slices.Equal(syncs, wantSyncs) {
		t.Fatalf("synced %v, want %v", syncs, wantSyncs)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("stat %s: %v, %v", dir, fi, err)
	}
	// Nothing to create: nothing created, nothing flushed.
	syncs = durabletest.Syncs(t, func() { created, err = durable.MkdirAll(dir, 0o700) })
	if err != nil || len(created) != 0 || len(syncs) != 0 {
		t.Fatalf("existing dir: created %v, synced %v, %v", created, syncs, err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := durable.MkdirAll(filepath.Join(file, "x"), 0o700); err == nil {
		t.Fatal("MkdirAll under a file succeeded")
	}
}

func TestWriteFileFlushesDataThenName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	var err error
	syncs := durabletest.Syncs(t, func() { err = durable.WriteFile(path, []byte("one"), 0o640) })
	if err != nil {
		t.Fatal(err)
	}
	isTemp := func(p string) bool { return filepath.Dir(p) == dir && p != path && p != dir }
	if len(syncs) != 2 || !after(syncs, isTemp, dir) {
		t.Fatalf("synced %v, want the temporary file then %s", syncs, dir)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "one" {
		t.Fatalf("read back %q, %v", b, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if err := durable.WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Fatalf("not replaced: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestCreateFileKeepsTheFirst(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "onion_v3_sk")
	var created bool
	var err error
	syncs := durabletest.Syncs(t, func() { created, err = durable.CreateFile(path, []byte("first"), 0o600) })
	if err != nil || !created {
		t.Fatalf("created %v, %v", created, err)
	}
	isTemp := func(p string) bool { return filepath.Dir(p) == dir && p != path && p != dir }
	if len(syncs) != 2 || !after(syncs, isTemp, dir) {
		t.Fatalf("synced %v, want the temporary file then %s", syncs, dir)
	}
	if created, err = durable.CreateFile(path, []byte("second"), 0o600); err != nil || created {
		t.Fatalf("second create: %v, %v", created, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first" {
		t.Fatalf("overwritten: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// On a file system without hard links CreateFile writes the file in place. A write that
// fails there (a full disk) must leave no file behind: the next CreateFile would take a
// partial one for another process's and keep it, and its reader (the onion key, the user
// key) refuse it at every start.
func TestCreateFileInPlaceFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "onion_v3_sk")
	var created bool
	var err error
	durabletest.NoHardLinks(t, 0, func() { created, err = durable.CreateFile(path, []byte("first"), 0o600) })
	if err != nil || !created {
		t.Fatalf("without hard links: created %v, %v", created, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first" {
		t.Fatalf("without hard links: read back %q", b)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	// The first write is the temporary file's, the second the file's in place.
	durabletest.NoHardLinks(t, 2, func() { created, err = durable.CreateFile(path, []byte("second"), 0o600) })
	if err == nil || created {
		t.Fatalf("full disk: created %v, %v; want an error", created, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind after the failed create: %v", entries)
	}
	if created, err = durable.CreateFile(path, []byte("third"), 0o600); err != nil || !created {
		t.Fatalf("create after the failure: %v, %v", created, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "third" {
		t.Fatalf("read back %q", b)
	}
}
