package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/teos-go/teos/internal/durable"
	"github.com/teos-go/teos/pkg/client"
	"github.com/teos-go/teos/pkg/teos"
)

// uploadsDir holds one receipt journal per (appointments file, tower).
const uploadsDir = "uploads"

// journalLine is one receipt kept in the journal, enough to prove it later:
// tower_signature signs user_signature || be32(start_block).
type journalLine struct {
	Index              int    `json:"index"`
	Locator            string `json:"locator"`
	StartBlock         uint32 `json:"start_block"`
	UserSignature      string `json:"user_signature"`
	TowerSignature     string `json:"tower_signature"`
	AvailableSlots     uint32 `json:"available_slots"`
	SubscriptionExpiry uint32 `json:"subscription_expiry"`
}

// journal is an append-only file of receipts. A process killed mid-write leaves at most one
// partial last line, which openJournal drops.
type journal struct {
	path    string
	f       *os.File
	w       *bufio.Writer
	done    map[int]journalLine
	unsync  int
	syncErr error
}

// journalPath names the journal after the file's content and the tower, so editing the file
// or changing tower starts afresh.
func journalPath(dir string, content []byte, tower teos.UserID) string {
	h := sha256.New()
	h.Write(content)
	h.Write(tower[:])
	return filepath.Join(dir, uploadsDir, hex.EncodeToString(h.Sum(nil)[:12])+".ndjson")
}

func openJournal(path string, n int) (*journal, error) {
	if _, err := durable.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	// The receipts it gets are synced as they arrive; its name must survive a crash too.
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	// Two runs writing one journal would write over each other's lines, and the next run
	// would drop every receipt after the first damaged line.
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("journal %s is in use: another teos-client upload of this file to this tower is running", path)
		}
		return nil, err
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	j := &journal{path: path, f: f, done: make(map[int]journalLine)}
	good := 0 // bytes of complete, valid lines
	for len(raw[good:]) > 0 {
		end := bytes.IndexByte(raw[good:], '\n')
		if end < 0 {
			break // a partial last line: the process was killed while writing it
		}
		var l journalLine
		if err := json.Unmarshal(raw[good:good+end], &l); err != nil || l.Index < 0 || l.Index >= n {
			break
		}
		j.done[l.Index] = l
		good += end + 1
	}
	if good < len(raw) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncate journal %s: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek journal: %w", err)
	}
	j.w = bufio.NewWriter(f)
	return j, nil
}

// errLocked: another process holds the journal.
var errLocked = errors.New("locked")

// syncEvery bounds the receipts a power cut can lose (a killed process loses none: each
// line is written to the file as it comes); lost ones are just sent again.
const syncEvery = 100

func (j *journal) add(l journalLine) error {
	b, _ := json.Marshal(l)
	j.w.Write(append(b, '\n'))
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	j.done[l.Index] = l
	if j.unsync++; j.unsync >= syncEvery {
		return j.sync()
	}
	return nil
}

func (j *journal) sync() error {
	j.unsync = 0
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	return nil
}

func (j *journal) close() error {
	err := j.sync()
	return errors.Join(err, j.f.Close())
}

// upload sends a file of appointments with streamed batches, keeping every receipt in a
// journal as it arrives, so a run that is interrupted (killed, cut off, tower restarted)
// resumes where it stopped: acknowledged items are never sent again.
func (a *app) upload(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upload", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	file := fs.String("file", "", "JSON list of {commitment_txid, penalty_rawtx, to_self_delay}")
	retryFor := fs.Duration("retry-for", 5*time.Minute, "keep retrying an unreachable tower this long without progress")
	progress := fs.Bool("progress", false, "show the progress bar even when stderr is not a terminal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *file == "" {
		return usagef("upload needs --file and no positional arguments")
	}
	content, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("read %s: %w", *file, err)
	}
	appts, err := readAppointments(*file)
	if err != nil {
		return err
	}
	t, dir, _, err := a.connect(ctx, false)
	if err != nil {
		return err
	}
	j, err := openJournal(journalPath(dir, content, t.ID()), len(appts))
	if err != nil {
		return err
	}
	defer j.close()
	stale := dropStaleReceipts(t, j)
	resumed := len(j.done)

	var bar *rateBar
	if a.progress || *progress {
		bar = newRateBar(a.stderr, len(appts), resumed)
	}
	failed := map[int]string{}
	sent := 0
	lastProgress := time.Now()
	checked := len(j.done) == 0
	for attempt := 0; ; attempt++ {
		var todo []int
		for i := range appts {
			if _, ok := j.done[i]; !ok {
				todo = append(todo, i)
			}
		}
		clear(failed)
		var err error
		if !checked {
			var ended bool
			if ended, err = checkStillHeld(ctx, t, j); ended {
				if bar != nil {
					bar.finish()
				}
				return err
			}
			checked = err == nil
		}
		if err == nil && len(todo) == 0 {
			break
		}
		var jerr error
		if err == nil {
			err = t.Upload(ctx, appts, todo, func(r client.UploadResult) {
				sent++
				if r.Err != nil {
					failed[r.Index] = r.Err.Error()
				} else if jerr == nil {
					rc := r.Receipt
					jerr = j.add(journalLine{Index: r.Index, Locator: rc.Locator.String(), StartBlock: rc.StartBlock,
						UserSignature: rc.UserSignature, TowerSignature: rc.TowerSignature,
						AvailableSlots: rc.AvailableSlots, SubscriptionExpiry: rc.SubscriptionExpiry})
					lastProgress = time.Now()
				}
				if bar != nil {
					bar.update(len(j.done) + len(failed))
				}
			})
		}
		if jerr != nil {
			return jerr
		}
		if err == nil {
			break
		}
		if errors.Is(err, client.ErrNoBatchExtension) {
			return fmt.Errorf("%w (a rust-teos v0.2 tower does not): add_appointment --file sends one request per appointment", err)
		}
		if ctx.Err() != nil || errors.Is(err, client.ErrMisbehaving) || !retryable(err) || time.Since(lastProgress) > *retryFor {
			if bar != nil {
				bar.finish()
			}
			return fmt.Errorf("upload stopped with %d of %d appointments acknowledged (run again to resume): %w", len(j.done), len(appts), err)
		}
		delay := min(time.Second<<min(attempt, 4), 10*time.Second)
		fmt.Fprintf(a.stderr, "\rteos-client: %v; retrying in %s\n", err, delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("upload stopped with %d of %d appointments acknowledged: %w", len(j.done), len(appts), ctx.Err())
		case <-time.After(delay):
		}
	}
	if bar != nil {
		bar.finish()
	}
	if err := j.sync(); err != nil {
		return err
	}
	type failure struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	}
	out := struct {
		Accepted int       `json:"accepted"`
		Failed   int       `json:"failed"`
		Resumed  int       `json:"resumed"`
		Stale    int       `json:"stale,omitempty"` // journaled receipts of an ended subscription, sent again
		Sent     int       `json:"sent"`
		Journal  string    `json:"journal"`
		Failures []failure `json:"failures,omitempty"`
	}{Accepted: len(j.done), Failed: len(failed), Resumed: resumed, Stale: stale, Sent: sent, Journal: j.path}
	for i, msg := range failed {
		out.Failures = append(out.Failures, failure{i, msg})
	}
	if err := a.printJSON(out); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d appointments refused", len(failed), len(appts))
	}
	return nil
}

// retryable says whether an upload error may go away by itself: anything but a tower's
// definite refusal of the request (4xx other than 408/429).
func retryable(err error) bool {
	if errors.Is(err, client.ErrNoBatchExtension) {
		return false
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.HTTPStatus >= 400 && apiErr.HTTPStatus < 500 {
		return apiErr.HTTPStatus == 408 || apiErr.HTTPStatus == 429
	}
	return true
}

// rateBar is a progress bar with the rate and the time left.
type rateBar struct {
	w      io.Writer
	total  int
	base   int // done before this run
	start  time.Time
	drawn  time.Time
	latest int
}

func newRateBar(w io.Writer, total, base int) *rateBar {
	return &rateBar{w: w, total: total, base: base, start: time.Now()}
}

func (b *rateBar) update(done int) {
	b.latest = done
	now := time.Now()
	if done != b.total && now.Sub(b.drawn) < 200*time.Millisecond {
		return
	}
	b.drawn = now
	el := now.Sub(b.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done-b.base) / el
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(b.total-done)/rate) * time.Second).Round(time.Second).String()
	}
	filled := done * barWidth / max(b.total, 1)
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d %.0f items/s, %s left ", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), done, b.total, rate, eta)
}

func (b *rateBar) finish() { fmt.Fprintln(b.w) }

// dropStaleReceipts forgets the journaled receipts of an earlier subscription period, so
// their items are sent again: a tower deletes a user (and every appointment) once the
// subscription ended, and a later register starts a new period. The start height never
// changes while a subscription is renewed, and every receipt of a period names an expiry past
// its start, so a receipt whose expiry is not past the saved registration's start is from an
// earlier period.
func dropStaleReceipts(t *client.Tower, j *journal) int {
	reg, ok := t.Registration()
	if !ok {
		return 0
	}
	n := 0
	for i, l := range j.done {
		if l.SubscriptionExpiry <= reg.SubscriptionStart {
			delete(j.done, i)
			n++
		}
	}
	return n
}

// checkStillHeld asks the tower for the latest journaled appointment before the journal is
// trusted: if the subscription has ended (expired, or the user deleted), none of the
// journaled appointments is held any more, or will be for long, and ended is true. Other
// errors are the request's (retried as the upload's).
func checkStillHeld(ctx context.Context, t *client.Tower, j *journal) (ended bool, err error) {
	var latest *journalLine
	for _, l := range j.done {
		if latest == nil || l.StartBlock > latest.StartBlock || l.StartBlock == latest.StartBlock && l.Index > latest.Index {
			latest = &l
		}
	}
	if latest == nil {
		return false, nil
	}
	b, err := hex.DecodeString(latest.Locator)
	if err != nil {
		return false, nil // not a locator: nothing to ask; the journal line says nothing
	}
	loc, err := teos.LocatorFromBytes(b)
	if err != nil {
		return false, nil
	}
	_, err = t.GetAppointment(ctx, loc)
	var apiErr *client.APIError
	switch {
	case err == nil:
		return false, nil
	case errors.As(err, &apiErr) && apiErr.Code == teos.ErrCodeAppointmentNotFound:
		return false, nil // that one deleted by the user, or its dispute resolved
	case errors.As(err, &apiErr) && apiErr.Code == teos.ErrCodeInvalidSignatureOrSubscriptionError:
		// Still the tower's error (printed with its code), with what it means here.
		return true, &client.APIError{HTTPStatus: apiErr.HTTPStatus, Code: apiErr.Code, Message: fmt.Sprintf("%s: the subscription "+
			"under which the %d journaled receipts were given has ended, so the tower does not keep those appointments: "+
			"run register, then upload again to send them", apiErr.Message, len(j.done))}
	}
	return false, err
}
