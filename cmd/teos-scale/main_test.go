package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFillThenMeasure runs both phases in-process on a tiny fixture; measure fails unless
// every planted dispute reached the responder with a penalty that spends it. Counts are read
// after the blocks, so the 12 breaches show as trackers.
func TestFillThenMeasure(t *testing.T) {
	db := filepath.Join(t.TempDir(), "scale.db")
	common := []string{"-n=3000", "-db=" + db, "-batch=1000", "-blocks=3", "-txs=200", "-matches=4", "-cold=false", "-seed=7"}
	var out, errs bytes.Buffer
	if err := run(append(common, "-phase=fill"), &out, &errs); err != nil {
		t.Fatalf("fill: %v\n%s", err, errs.String())
	}
	if !strings.Contains(out.String(), "fill: 3000 appointments") {
		t.Fatalf("fill output: %s", out.String())
	}
	out.Reset()
	if err := run(append(common, "-phase=measure", "-filestats"), &out, &errs); err != nil {
		t.Fatalf("measure: %v\n%s", err, out.String())
	}
	for _, want := range []string{"store after the blocks: 3 users, 2988 appointments watched, 12 trackers", "breaches: 12 handed over", "locator_idx"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("measure output lacks %q:\n%s", want, out.String())
		}
	}
	// A second fill with the same parameters reuses the file.
	out.Reset()
	if err := run(append(common, "-phase=fill"), &out, &errs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "reused existing fixture") {
		t.Fatalf("refill output: %s", out.String())
	}
}

// TestMeasureAgainOnReusedFixture measures twice on one fixture with the same seed: the first
// run's breaches left trackers, and the second must draw other appointments, not count those
// as breaches the responder missed.
func TestMeasureAgainOnReusedFixture(t *testing.T) {
	db := filepath.Join(t.TempDir(), "scale.db")
	common := []string{"-n=600", "-db=" + db, "-batch=1000", "-blocks=3", "-txs=50", "-matches=4", "-cold=false", "-seed=7", "-compact=false"}
	var out, errs bytes.Buffer
	if err := run(append(common, "-phase=fill"), &out, &errs); err != nil {
		t.Fatalf("fill: %v\n%s", err, errs.String())
	}
	for round, want := range []string{"588 appointments watched, 12 trackers", "576 appointments watched, 24 trackers"} {
		out.Reset()
		if err := run(append(common, "-phase=measure"), &out, &errs); err != nil {
			t.Fatalf("measure %d: %v\n%s", round+1, err, out.String())
		}
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "breaches: 12 handed over") {
			t.Fatalf("measure %d: output lacks %q or 12 breaches:\n%s", round+1, want, out.String())
		}
	}
}

// TestBadCommandLines: each is refused before anything is filled. A stray argument used to be
// accepted, and the measure phase's child (this command line plus -phase=measure) then read
// -phase=measure as an argument too and started another child, without end.
func TestBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{"-phase=fill", "extra"},
		{"-phase=mesure"},
		{"-phase=fill", "-n=10", "-blocks=3", "-matches=4", "-txs=50"},
	} {
		db := filepath.Join(t.TempDir(), "scale.db")
		var out, errs bytes.Buffer
		err := run(append([]string{"-db=" + db, "-n=100", "-cold=false"}, args...), &out, &errs)
		if err == nil {
			t.Errorf("%q: accepted:\n%s", args, out.String())
		}
		if _, serr := os.Stat(db); serr == nil {
			t.Errorf("%q: filled %s before refusing", args, db)
		}
	}
}

// TestHelpIsNotAnError: -h printed the usage, then 'teos-scale: flag: help requested' and
// exit 1.
func TestHelpIsNotAnError(t *testing.T) {
	var usage bytes.Buffer
	if err := run([]string{"-h"}, io.Discard, &usage); err != nil {
		t.Fatalf("run -h = %v", err)
	}
	if !strings.Contains(usage.String(), "-matches") {
		t.Fatalf("no usage printed: %q", usage.String())
	}
}
