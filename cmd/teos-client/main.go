// Command teos-client is a user's client for teos towers' public HTTP API: it registers,
// sends appointments (one, or many from a JSON file), and queries appointments and the
// subscription. It prints JSON on stdout; errors go to stderr as {"error", "error_code"}.
//
// The user key lives in <datadir>/user_sk (hex, mode 0600, directory 0700), created on
// first use. The tower id, needed to check every receipt, comes from --towerid; register
// saves it with the tower URL, the --proxy used and the registration receipt in
// <datadir>/tower.json so later commands need none of these flags. register --discover
// learns the id from the tower's GET /info instead, which trusts the tower to name its own
// key (see pkg/client).
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/durable"
	"github.com/teos-go/teos/pkg/client"
	"github.com/teos-go/teos/pkg/teos"
)

const (
	exitFailure = 1
	exitUsage   = 2
	// exitTryAgain: nothing was refused, the tower could not be reached or had a passing fault.
	exitTryAgain = 3

	defaultDataDir     = "~/.teos_client"
	defaultTowerURL    = "http://localhost:9814"
	defaultToSelfDelay = 42 // what the CLN client sends; the tower does not check it
	keyFile            = "user_sk"
	towerFile          = "tower.json"
)

const usage = `usage: teos-client [--datadir DIR] [--tower URL] [--towerid HEX] [--proxy HOST:PORT|none] [--timeout D] <command> [args]

--proxy HOST:PORT, a SOCKS5 proxy such as Tor's 127.0.0.1:9050 (needed for .onion towers), is
saved with the tower: later commands use it without the flag. A later --proxy HOST:PORT replaces
it, --proxy none goes direct and forgets it (both saved once the tower answered that way).

commands:
  register [--discover]
  add_appointment --commitment-txid TXID --penalty RAWTX [--to-self-delay N]
  add_appointment --file APPTS.json [--concurrency N]
  get_appointment <locator>
  get_subscription_info [--max-locators N]
  delete <locator>
  upload --file APPTS.json [--retry-for D] [--progress]
  clear_misbehaving

A tower whose receipt does not verify is flagged misbehaving in the data dir: register,
add_appointment, upload and delete refuse it until clear_misbehaving (for --towerid, else the
saved tower).

Exit status: 0 done; 1 failed (refused by the tower, or a local error); 2 bad command line;
3 not done, try again later: the tower (or --proxy) could not be reached, cut the connection,
timed out or answered 502/503/504/429/408 (a tower stopping answers 503 with error_code 7), and
nothing was refused.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stderr))
	stop()
	os.Exit(code)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// usageError is a command line that could not be understood.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// app carries what every command needs.
type app struct {
	dataDir  string
	url      string
	towerID  string
	proxy    string // --proxy: "" unset, proxyNone, or host:port
	timeout  time.Duration
	stdout   io.Writer
	stderr   io.Writer
	progress bool

	cmd        string        // the command being run
	dir        string        // set by connect: the data dir
	connected  string        // set by connect: the tower URL
	tower      *client.Tower // set by connect
	knownTower bool          // set by connect: the tower is the saved, registered one
	reached    atomic.Bool   // an HTTP response came back (through --proxy, if given)

	clientOpts []client.Option // a command's own options for the client, used by connect
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, progress bool) int {
	a := &app{stdout: stdout, stderr: stderr, progress: progress}
	fs := flag.NewFlagSet("teos-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	fs.StringVar(&a.dataDir, "datadir", defaultDataDir, "data directory (user key, saved tower)")
	fs.StringVar(&a.url, "tower", "", "tower base URL (default: the saved one, else "+defaultTowerURL+")")
	fs.StringVar(&a.towerID, "towerid", "", "tower id (hex public key) receipts are checked against")
	fs.StringVar(&a.proxy, "proxy", "", "SOCKS5 proxy `host:port` to reach the tower through, e.g. Tor's 127.0.0.1:9050 (needed for .onion towers; names are resolved by the proxy); saved with the tower, none to stop using the saved one")
	// Above what a tower with the default api_hold_timeout (45 s) may take: its rate limit's
	// delay (up to 45 s) and then a fault of its own held out (45 s) answer late, not with an error.
	fs.DurationVar(&a.timeout, "timeout", 2*time.Minute, "timeout of each HTTP request (upload, get_subscription_info: of each silence, sending or receiving)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if err := checkProxy(a.proxy, true); err != nil {
		fmt.Fprintf(stderr, "teos-client: %v\n%s", err, usage)
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	// A response seen through the client's transport is what shows a --proxy works.
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotFirstResponseByte: func() { a.reached.Store(true) }})
	a.cmd = fs.Arg(0)
	err := a.dispatch(ctx, fs.Arg(0), fs.Args()[1:])
	if merr := a.recordMisbehaviour(); merr != nil {
		fmt.Fprintf(stderr, "teos-client: warning: misbehaving tower not saved: %v\n", merr)
	}
	if perr := a.rememberProxy(); perr != nil {
		// The command itself is done: its outcome, not the bookkeeping, sets the exit code.
		fmt.Fprintf(stderr, "teos-client: warning: --proxy not saved: %v\n", perr)
	}
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "teos-client: %s\n%s", ue.msg, usage)
		return exitUsage
	case errors.Is(err, flag.ErrHelp):
		return exitUsage
	default:
		a.printError(err)
		if isTryAgain(err) {
			return exitTryAgain
		}
		return exitFailure
	}
}

// tryAgainError is a command's own failure that, like client.IsTransient's, refused nothing.
type tryAgainError struct{ err error }

func (e *tryAgainError) Error() string { return e.err.Error() }
func (e *tryAgainError) Unwrap() error { return e.err }

// isTryAgain reports whether err left nothing refused and may pass by itself.
func isTryAgain(err error) bool {
	var ta *tryAgainError
	return errors.As(err, &ta) || client.IsTransient(err) && !errors.Is(err, client.ErrMisbehaving)
}

func (a *app) dispatch(ctx context.Context, cmd string, args []string) error {
	switch cmd {
	case "register":
		return a.register(ctx, args)
	case "add_appointment":
		return a.addAppointment(ctx, args)
	case "get_appointment":
		return a.getAppointment(ctx, args)
	case "get_subscription_info":
		return a.getSubscriptionInfo(ctx, args)
	case "delete", "delete_appointment":
		return a.deleteAppointment(ctx, args) // delete.go
	case "upload":
		return a.upload(ctx, args) // upload.go
	case "clear_misbehaving":
		return a.clearMisbehaving(args) // record.go
	default:
		return usagef("unknown command %q", cmd)
	}
}

func (a *app) printError(err error) {
	out := map[string]any{"error": err.Error()}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		// The tower's message as it sent it, after what the command added around it (how far
		// an upload got, what to do next).
		msg := err.Error()
		if context, ok := strings.CutSuffix(msg, apiErr.Error()); ok {
			msg = context + apiErr.Message
		}
		out = map[string]any{"error": msg, "error_code": apiErr.Code}
	}
	b, _ := json.Marshal(out)
	fmt.Fprintln(a.stderr, string(b))
}

func (a *app) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = fmt.Fprintln(a.stdout, string(b))
	return err
}

// loadOrCreateKey returns the user key in dir, creating dir (0700) and the key (0600) the
// first time. A data dir that already holds a saved tower but no key is damaged: a new key
// there would silently drop the user's subscription, so it is an error.
func loadOrCreateKey(dir string) (*btcec.PrivateKey, error) {
	if _, err := durable.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, keyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Lstat(filepath.Join(dir, towerFile)); !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("user key %s is missing but %s is there: restore the key or use another --datadir", path, towerFile)
		}
		key, kerr := btcec.NewPrivateKey()
		if kerr != nil {
			return nil, fmt.Errorf("generate user key: %w", kerr)
		}
		// Whole and synced or not at all, and never over a key a concurrent first run made.
		created, cerr := durable.CreateFile(path, []byte(hex.EncodeToString(key.Serialize())+"\n"), 0o600)
		if cerr != nil {
			return nil, fmt.Errorf("create user key: %w", cerr)
		}
		if created {
			return key, nil
		}
		// Another run created it first: use that one.
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read user key: %w", err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("user key %s: want 64 hex characters", path)
	}
	// PrivKeyFromBytes would reduce it mod n and take zero: both mean a damaged file.
	var scalar btcec.ModNScalar
	if overflow := scalar.SetByteSlice(b); overflow || scalar.IsZero() {
		return nil, fmt.Errorf("user key %s: not a valid secp256k1 private key", path)
	}
	return btcec.PrivKeyFromScalar(&scalar), nil
}

// savedTower is <datadir>/tower.json.
type savedTower struct {
	URL          string        `json:"url"`
	TowerID      string        `json:"tower_id"`
	Proxy        string        `json:"proxy,omitempty"` // SOCKS5 host:port; absent in older files
	Registration *registration `json:"registration,omitempty"`
	// Misbehaving: towers, by id, flagged misbehaving (record.go); any tower, not only this one.
	Misbehaving map[string]*misbehaviour `json:"misbehaving,omitempty"`
}

type registration struct {
	AvailableSlots     uint32 `json:"available_slots"`
	SubscriptionStart  uint32 `json:"subscription_start"`
	SubscriptionExpiry uint32 `json:"subscription_expiry"`
}

func (a *app) loadSaved(dir string) (*savedTower, error) {
	raw, err := os.ReadFile(filepath.Join(dir, towerFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read saved tower: %w", err)
	}
	var s savedTower
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("read saved tower %s: %w", towerFile, err)
	}
	return &s, nil
}

func saveTower(dir string, s *savedTower) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode saved tower: %w", err)
	}
	// A temporary file of its own, synced before the rename: two runs saving at once never
	// write into one file, and a crash never leaves an empty tower.json.
	if err := durable.WriteFile(filepath.Join(dir, towerFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save tower: %w", err)
	}
	return nil
}

func parseTowerID(s string) (teos.UserID, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return teos.UserID{}, usagef("tower id %q is not hex", s)
	}
	id, err := teos.ParseUserID(b)
	if err != nil {
		return teos.UserID{}, usagef("tower id %q: %v", s, err)
	}
	return id, nil
}

// connect resolves the data dir, key, tower URL and id. With discover and no known id, the
// id is asked from the tower.
func (a *app) connect(ctx context.Context, discover bool) (*client.Tower, string, *savedTower, error) {
	dir, err := config.ExpandHome(a.dataDir)
	if err != nil {
		return nil, "", nil, err
	}
	key, err := loadOrCreateKey(dir)
	if err != nil {
		return nil, "", nil, err
	}
	saved, err := a.loadSaved(dir)
	if err != nil {
		return nil, "", nil, err
	}
	url := a.url
	if url == "" && saved != nil {
		url = saved.URL
	}
	if url == "" {
		url = defaultTowerURL
	}
	url = normalizeURL(url)
	a.dir, a.connected = dir, url
	opts := append([]client.Option{client.WithHTTPClient(&http.Client{Timeout: a.timeout})}, a.clientOpts...)
	if p := a.proxyFor(url, saved); p != "" {
		if a.proxy == "" { // the saved one: checked only when used, so --proxy can replace it
			if err := checkProxy(p, false); err != nil {
				return nil, "", nil, fmt.Errorf("saved tower %s: %w (replace it with --proxy HOST:PORT or --proxy %s)", towerFile, err, proxyNone)
			}
		}
		opts = append(opts, client.WithProxy(p))
	}
	idHex := a.towerID
	if idHex == "" && saved != nil && saved.URL == url {
		idHex = saved.TowerID
	}
	if idHex == "" {
		if !discover {
			return nil, "", nil, usagef("the tower id is unknown: pass --towerid (or run register --discover)")
		}
		t, err := client.Discover(ctx, url, key, opts...)
		if err != nil {
			return nil, "", nil, fmt.Errorf("discover tower id: %w", err)
		}
		if err := a.checkFlagged(saved, t.ID().String()); err != nil {
			return nil, "", nil, err
		}
		a.tower = t
		return t, dir, saved, nil
	}
	id, err := parseTowerID(idHex)
	if err != nil {
		return nil, "", nil, err
	}
	if err := a.checkFlagged(saved, id.String()); err != nil {
		return nil, "", nil, err
	}
	if saved != nil && saved.TowerID == id.String() && saved.Registration != nil {
		a.knownTower = saved.URL == url
		r := saved.Registration
		// Only the expiry: the saved slot count is what register got, and a renewal adds to
		// what is left since, which may be less (the slots were used).
		opts = append(opts, client.WithRegistration(teos.RegistrationReceipt{
			UserID:             teos.UserIDFromPubKey(key.PubKey()),
			SubscriptionStart:  r.SubscriptionStart,
			SubscriptionExpiry: r.SubscriptionExpiry,
		}))
	}
	a.tower = client.New(url, id, key, opts...)
	return a.tower, dir, saved, nil
}

func (a *app) register(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	discover := fs.Bool("discover", false, "learn the tower id from GET /info (trust on first use)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("register takes no arguments")
	}
	t, dir, _, err := a.connect(ctx, *discover)
	if err != nil {
		return err
	}
	sub, err := t.Register(ctx)
	if err != nil {
		return err
	}
	// Read again under the lock: another run may have changed the file since connect read it.
	err = a.updateTower(dir, func(cur *savedTower) (*savedTower, error) {
		next := &savedTower{URL: t.URL(), TowerID: t.ID().String(), Proxy: a.proxyFor(t.URL(), cur)}
		if cur != nil {
			next.Misbehaving = cur.Misbehaving
		}
		next.Registration = &registration{AvailableSlots: sub.AvailableSlots, SubscriptionStart: sub.SubscriptionStart, SubscriptionExpiry: sub.SubscriptionExpiry}
		return next, nil
	})
	if err != nil {
		return err
	}
	return a.printJSON(struct {
		UserID                string `json:"user_id"`
		AvailableSlots        uint32 `json:"available_slots"`
		SubscriptionStart     uint32 `json:"subscription_start"`
		SubscriptionExpiry    uint32 `json:"subscription_expiry"`
		SubscriptionSignature string `json:"subscription_signature"`
		TowerID               string `json:"tower_id"`
	}{sub.UserID.String(), sub.AvailableSlots, sub.SubscriptionStart, sub.SubscriptionExpiry, sub.Signature, t.ID().String()})
}

// receiptJSON is the tower's add_appointment answer, or an error for that appointment.
type receiptJSON struct {
	Locator            string  `json:"locator"`
	StartBlock         *uint32 `json:"start_block,omitempty"`
	Signature          string  `json:"signature,omitempty"`
	AvailableSlots     *uint32 `json:"available_slots,omitempty"`
	SubscriptionExpiry *uint32 `json:"subscription_expiry,omitempty"`
	Error              string  `json:"error,omitempty"`
	ErrorCode          *int    `json:"error_code,omitempty"`
}

func toReceiptJSON(loc teos.Locator, r *client.AppointmentReceipt, err error) receiptJSON {
	out := receiptJSON{Locator: loc.String()}
	if err != nil {
		out.Error = err.Error()
		var apiErr *client.APIError
		if errors.As(err, &apiErr) {
			out.Error, out.ErrorCode = apiErr.Message, &apiErr.Code
		}
		return out
	}
	out.StartBlock, out.Signature = &r.StartBlock, r.TowerSignature
	out.AvailableSlots, out.SubscriptionExpiry = &r.AvailableSlots, &r.SubscriptionExpiry
	return out
}

// fileEntry is one element of the --file JSON list.
type fileEntry struct {
	CommitmentTxID string  `json:"commitment_txid"`
	PenaltyRawTx   string  `json:"penalty_rawtx"`
	ToSelfDelay    *uint32 `json:"to_self_delay"`
}

func readAppointments(path string) ([]teos.Appointment, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var entries []fileEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("%s: want a JSON list of {commitment_txid, penalty_rawtx, to_self_delay}: %w", path, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no appointments", path)
	}
	appts := make([]teos.Appointment, len(entries))
	for i, e := range entries {
		delay := uint32(defaultToSelfDelay)
		if e.ToSelfDelay != nil {
			delay = *e.ToSelfDelay
		}
		if appts[i], err = client.NewAppointmentFromHex(e.CommitmentTxID, e.PenaltyRawTx, delay); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", path, i, err)
		}
	}
	return appts, nil
}

func (a *app) addAppointment(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("add_appointment", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	txid := fs.String("commitment-txid", "", "commitment (dispute) txid, display hex")
	penalty := fs.String("penalty", "", "raw penalty transaction, hex")
	delay := fs.Uint("to-self-delay", defaultToSelfDelay, "to_self_delay of the commitment")
	file := fs.String("file", "", "JSON list of {commitment_txid, penalty_rawtx, to_self_delay}")
	conc := fs.Int("concurrency", client.DefaultConcurrency, "requests in flight with --file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("add_appointment takes no positional arguments")
	}
	single := *txid != "" || *penalty != ""
	if single == (*file != "") || (single && (*txid == "" || *penalty == "")) {
		return usagef("add_appointment needs either --commitment-txid and --penalty, or --file")
	}
	if *delay > 1<<32-1 {
		return usagef("--to-self-delay %d does not fit in 32 bits", *delay)
	}
	var appts []teos.Appointment
	if *file != "" {
		var err error
		if appts, err = readAppointments(*file); err != nil {
			return err
		}
	} else {
		appt, err := client.NewAppointmentFromHex(*txid, *penalty, uint32(*delay))
		if err != nil {
			return usagef("%v", err)
		}
		appts = []teos.Appointment{appt}
	}
	t, _, _, err := a.connect(ctx, false)
	if err != nil {
		return err
	}
	if *file == "" {
		r, err := t.AddAppointment(ctx, appts[0])
		if err != nil {
			return err
		}
		return a.printJSON(toReceiptJSON(appts[0].Locator, r, nil))
	}

	opts := client.SendOptions{Concurrency: *conc}
	var bar *progressBar
	if a.progress && len(appts) > 1 {
		bar = &progressBar{w: a.stderr}
		opts.Progress = bar.update
	}
	results := t.AddAppointments(ctx, appts, opts)
	if bar != nil {
		bar.finish()
	}
	out := struct {
		Accepted int           `json:"accepted"`
		Failed   int           `json:"failed"`
		Results  []receiptJSON `json:"results"`
	}{Results: make([]receiptJSON, len(results))}
	for i, r := range results {
		out.Results[i] = toReceiptJSON(r.Locator, r.Receipt, r.Err)
		if r.Err != nil {
			out.Failed++
		} else {
			out.Accepted++
		}
	}
	if err := a.printJSON(out); err != nil {
		return err
	}
	if err := t.Misbehaving(); err != nil {
		return err
	}
	if out.Failed > 0 {
		err := fmt.Errorf("%d of %d appointments failed", out.Failed, len(results))
		for _, r := range results {
			if r.Err != nil && !client.IsTransient(r.Err) {
				return err // refused
			}
		}
		return &tryAgainError{err}
	}
	return nil
}

// locatorArg reads a command's single argument, a locator in hex.
func locatorArg(command string, args []string) (teos.Locator, error) {
	if len(args) != 1 {
		return teos.Locator{}, usagef("%s takes one locator", command)
	}
	b, err := hex.DecodeString(args[0])
	if err != nil {
		return teos.Locator{}, usagef("locator %q is not hex", args[0])
	}
	loc, err := teos.LocatorFromBytes(b)
	if err != nil {
		return teos.Locator{}, usagef("%v", err)
	}
	return loc, nil
}

func (a *app) getAppointment(ctx context.Context, args []string) error {
	loc, err := locatorArg("get_appointment", args)
	if err != nil {
		return err
	}
	t, _, _, err := a.connect(ctx, false)
	if err != nil {
		return err
	}
	st, err := t.GetAppointment(ctx, loc)
	if err != nil {
		return err
	}
	var appt any
	if st.Appointment != nil {
		appt = struct {
			Locator       string `json:"locator"`
			EncryptedBlob string `json:"encrypted_blob"`
			ToSelfDelay   uint32 `json:"to_self_delay"`
		}{st.Appointment.Locator.String(), hex.EncodeToString(st.Appointment.EncryptedBlob), st.Appointment.ToSelfDelay}
	} else {
		appt = struct {
			DisputeTxID  string `json:"dispute_txid"`
			PenaltyTxID  string `json:"penalty_txid"`
			PenaltyRawTx string `json:"penalty_rawtx"`
		}{st.Tracker.DisputeTxID, st.Tracker.PenaltyTxID, hex.EncodeToString(st.Tracker.PenaltyRawTx)}
	}
	return a.printJSON(struct {
		Appointment any    `json:"appointment"`
		Status      string `json:"status"`
	}{appt, st.Status})
}

// progressBar redraws one line on a terminal.
type progressBar struct {
	w    io.Writer
	last int
}

const barWidth = 40

func (p *progressBar) update(done, total int) {
	filled := done * barWidth / total
	if filled == p.last && done != total {
		return // redraw only when the bar moves
	}
	p.last = filled
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), done, total)
}

func (p *progressBar) finish() { fmt.Fprintln(p.w) }
