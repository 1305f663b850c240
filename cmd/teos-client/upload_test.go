package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A client killed while writing a receipt leaves a partial last line: it is dropped, and the
// lines after it are appended where it was.
func TestJournalDropsPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), uploadsDir, "x.ndjson")
	j, err := openJournal(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{3, 1} {
		if err := j.add(journalLine{Index: i, Locator: "l", UserSignature: "u", TowerSignature: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"index":7,"locator":"l","start_blo`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	j, err = openJournal(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.done) != 2 || j.done[3].Locator != "l" || j.done[1].TowerSignature != "s" {
		t.Fatalf("reopened journal holds %v", j.done)
	}
	if err := j.add(journalLine{Index: 7}); err != nil {
		t.Fatal(err)
	}
	j.close()
	j, err = openJournal(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if len(j.done) != 3 {
		t.Fatalf("after appending past the partial line: %v", j.done)
	}
	// An index past the file's items (another file, same name) is not trusted.
	j2, err := openJournal(path, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.close()
	if _, ok := j2.done[7]; ok {
		t.Fatal("out-of-range index kept")
	}
}
