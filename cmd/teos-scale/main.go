// Command teos-scale measures block processing against a large store: it fills a bbolt file
// with n appointments (or reuses one filled before with the same n), then, in a fresh child
// process, reopens it and connects synthetic blocks through the real gatekeeper and watcher,
// printing per-block times and the process's heap and RSS.
//
//	teos-scale -n 1000000 -db /tmp/scale.db -blocks 20 -txs 4000 -matches 10
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "teos-scale:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("teos-scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 100_000, "stored appointments")
	db := fs.String("db", "/tmp/teos-scale.db", "database file (reused if it holds the same fixture)")
	users := fs.Int("users", 0, "users owning the appointments (default n/1000, at least 1)")
	batch := fs.Int("batch", 100_000, "appointments per fill transaction")
	blocks := fs.Int("blocks", 20, "blocks to connect")
	txs := fs.Int("txs", 4000, "transactions per block")
	matches := fs.Int("matches", 0, "transactions per block that trigger a stored appointment")
	seed := fs.Uint64("seed", 0, "seed for blocks and matches (default: time, so reruns trigger new appointments)")
	cold := fs.Bool("cold", true, "drop the file from the page cache before opening it")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the block phase here")
	fileStats := fs.Bool("filestats", false, "print each bucket's B+tree shape at the end (reads the whole file)")
	compact := fs.Bool("compact", true, "compact the file after the fill (see compactFile)")
	rebuild := fs.Bool("rebuild", false, "refill even if a matching fixture exists")
	phase := fs.String("phase", "all", "all, fill or measure (all runs measure in a child process)")
	locFilter := fs.Bool("locfilter", true, "use the store's in-memory locator filter (false: the baseline without it)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil // -h: the usage is printed, as asked
	} else if err != nil {
		return err
	}
	// The measure phase re-runs this command line with its own flags appended: after a
	// stray argument they would be arguments too, and each child would start another.
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (every option is a flag, e.g. -db %s)", fs.Args(), fs.Arg(0))
	}
	if *phase != "all" && *phase != "fill" && *phase != "measure" {
		return fmt.Errorf("-phase %q: want all, fill or measure", *phase)
	}
	if *n <= 0 || *batch <= 0 || *blocks <= 0 || *txs < 1+*matches || *matches < 0 {
		return errors.New("need n, batch, blocks > 0, matches >= 0 and txs > matches")
	}
	if *matches**blocks > *n {
		return fmt.Errorf("%d matches in %d blocks need as many stored appointments, -n is %d", *matches, *blocks, *n)
	}
	if *users <= 0 {
		*users = max(1, *n/1000)
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}

	meta, ok, err := readMeta(*db)
	if err != nil {
		return err
	}
	matching := ok && meta == fixtureMeta{Version: fixtureVersion, Appointments: *n, Users: *users, Compacted: *compact}
	reuse := matching && !*rebuild
	if *phase == "measure" {
		if !matching {
			return fmt.Errorf("%s holds no fixture of %d appointments for %d users", *db, *n, *users)
		}
		return measure(measureConfig{path: *db, blocks: *blocks, txs: *txs, matches: *matches, appointments: *n,
			users: *users, seed: *seed, cold: *cold, cpuProfile: *cpuProfile, fileStats: *fileStats, noFilter: !*locFilter}, stdout)
	}

	fmt.Fprintf(stdout, "teos-scale: n=%d users=%d db=%s\n", *n, *users, *db)
	if reuse {
		st, err := os.Stat(*db)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "fill: reused existing fixture, file %.1f MiB\n", mib(uint64(st.Size())))
	} else {
		res, err := fill(*db, *n, *users, *batch, *compact, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "fill: %d appointments in %.1fs (%.0f/s, NoSync + final sync), batches of %d: first %.2fs, last %.2fs; file %.1f MiB (%.0f B/appointment)\n",
			*n, res.elapsed.Seconds(), float64(*n)/res.elapsed.Seconds(), *batch, res.firstBatch.Seconds(), res.lastBatch.Seconds(),
			mib(uint64(res.fileBytes)), float64(res.fileBytes)/float64(*n))
		if *compact {
			fmt.Fprintf(stdout, "compaction: %.1fs, file %.1f MiB (%.0f B/appointment)\n",
				res.compaction.Seconds(), mib(uint64(res.compactedBytes)), float64(res.compactedBytes)/float64(*n))
		}
	}
	if *phase == "fill" {
		return nil
	}

	// A child process measures, so the fill's heap and mapped pages do not count.
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(exe, append(args, "-phase=measure", fmt.Sprintf("-seed=%d", *seed), fmt.Sprintf("-users=%d", *users))...)
	child.Stdout, child.Stderr = stdout, stderr
	if err := child.Run(); err != nil {
		return fmt.Errorf("measure phase: %w", err)
	}
	return nil
}
