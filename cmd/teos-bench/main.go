// Command teos-bench drives a running teos v0.2 tower over its public HTTP API and reports
// throughput, latency percentiles and errors per endpoint. It speaks only the wire protocol,
// so it works against any v0.2 tower.
//
//	teos-bench -url http://127.0.0.1:9814 -users 64 -c 64 -duration 20s -mix add=1,get=0.1,info=0.05
//
// Requests are signed before the timed loop (-sign presigned) unless -sign inline is given.
// In the same run it times one signature recovery plus one signature on this machine (the
// crypto floor of one add_appointment) and reports add_appointment throughput against it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "teos-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h: the usage is printed, as asked
	}
	if err != nil {
		return err
	}
	rep, err := bench(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if cfg.jsonFile != "" {
		f, err := os.Create(cfg.jsonFile)
		if err != nil {
			return err
		}
		if err := errors.Join(rep.writeJSON(f), f.Close()); err != nil {
			return fmt.Errorf("write %s: %w", cfg.jsonFile, err)
		}
	}
	if cfg.jsonOut {
		return rep.writeJSON(stdout)
	}
	rep.writeTable(stdout)
	return nil
}

type config struct {
	url      string
	users    int
	conns    int
	duration time.Duration
	count    int
	mix      mix
	towerID  string
	inline   bool
	presign  int
	blobLen  int
	timeout  time.Duration
	bound    time.Duration
	jsonOut  bool
	jsonFile string
	verifyN  int
	remote   bool
	lean     bool // -http lean
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("teos-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.url, "url", "http://127.0.0.1:9814", "tower's public HTTP API")
	fs.IntVar(&c.users, "users", 64, "simulated users, each with its own key (registered first)")
	fs.IntVar(&c.conns, "c", 64, "concurrent keep-alive connections, one request in flight on each")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "how long to run (ignored when -n is set)")
	fs.IntVar(&c.count, "n", 0, "stop after this many requests instead of after -duration")
	mixText := fs.String("mix", "add=1", "request mix as endpoint=weight: add, get, info, register")
	fs.StringVar(&c.towerID, "towerid", "", "tower id (hex); when set, every receipt's signature is checked against it")
	fs.IntVar(&c.verifyN, "verifyevery", 1, "with -towerid, check one add_appointment receipt in this many (a check costs a recovery on the client's CPU)")
	sign := fs.String("sign", "presigned", "presigned: sign before the timed loop; inline: sign each request in the loop")
	fs.IntVar(&c.presign, "presign", 0, "add requests signed ahead (default: -n, or 3000 per second of -duration); inline signing takes over when they run out")
	fs.IntVar(&c.blobLen, "blob", 500, "encrypted blob length in bytes")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.DurationVar(&c.bound, "bound", time.Second, "time spent measuring the crypto bound before and after the load (0: skip)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&c.jsonFile, "jsonout", "", "also write the JSON report to this file")
	httpClient := fs.String("http", "net/http", "HTTP client of the load: net/http, or lean (a minimal keep-alive HTTP/1.1 client that leaves more CPU to a tower on the same machine)")
	fs.BoolVar(&c.remote, "allow-remote", false, "allow a tower that is not on a loopback address (a load test is an attack on anyone else's tower)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	m, err := parseMix(*mixText)
	if err != nil {
		return c, err
	}
	c.mix = m
	switch *sign {
	case "presigned":
	case "inline":
		c.inline = true
	default:
		return c, fmt.Errorf("-sign %q: want presigned or inline", *sign)
	}
	switch *httpClient {
	case "net/http":
	case "lean":
		c.lean = true
	default:
		return c, fmt.Errorf("-http %q: want net/http or lean", *httpClient)
	}
	if c.users < 1 || c.conns < 1 || c.count < 0 || c.blobLen < 1 || c.presign < 0 || c.timeout <= 0 || c.verifyN < 1 {
		return c, errors.New("need -users, -c, -blob, -verifyevery >= 1, -n, -presign >= 0 and -timeout > 0")
	}
	if c.bound < 0 {
		return c, errors.New("-bound must be >= 0 (0: skip)")
	}
	if c.count == 0 && c.duration <= 0 {
		return c, errors.New("need -duration > 0 or -n > 0")
	}
	if err := checkLoopback(c.url); err != nil && !c.remote {
		return c, fmt.Errorf("%w (pass -allow-remote to load a tower you run elsewhere)", err)
	}
	if c.presign == 0 && !c.inline {
		c.presign = c.count
		if c.count == 0 {
			c.presign = int(3000 * c.duration.Seconds())
		}
	}
	return c, nil
}

// checkLoopback refuses a URL whose host is not a loopback address or localhost.
func checkLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("-url %q: %w", rawURL, err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %q is not a loopback address", rawURL)
}
