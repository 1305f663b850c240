package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/teos-go/teos/pkg/teos"
)

// Batch extension limits (the tower's contract for POST /add_appointments).
const (
	// ExtAddAppointments is the extension name GET /info lists when POST /add_appointments exists.
	ExtAddAppointments = "add_appointments"
	MaxBatchItems      = 1000
	MaxBatchBodyBytes  = 2_200_000
	// DefaultConcurrency is used when SendOptions.Concurrency is not positive.
	DefaultConcurrency = 8
)

type batchSupport int

const (
	batchUnknown batchSupport = iota
	batchYes
	batchNo
)

// SendOptions tunes SendMany.
type SendOptions struct {
	// Concurrency bounds the requests in flight over all towers (a batch counts as one).
	Concurrency int
	// Progress, if set, is called (never concurrently) after each item completes.
	Progress func(done, total int)
}

// ItemResult is the outcome of sending appointment Index to Tower: a verified Receipt or Err.
type ItemResult struct {
	Tower   *Tower
	Index   int
	Locator teos.Locator
	Receipt *AppointmentReceipt
	Err     error
}

type progress struct {
	mu    sync.Mutex
	done  int
	total int
	fn    func(done, total int)
}

func (p *progress) add(n int) {
	if p.fn == nil || n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.fn(p.done, p.total)
}

// SendMany sends every appointment to every tower. The results are tower-major: result
// i*len(appts)+j is appts[j] on towers[i]. Each tower uses the batch extension when it
// advertises it, single requests otherwise.
func SendMany(ctx context.Context, towers []*Tower, appts []teos.Appointment, opts SendOptions) []ItemResult {
	res := make([]ItemResult, len(towers)*len(appts))
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	sem := make(chan struct{}, conc)
	prog := &progress{total: len(res), fn: opts.Progress}
	var wg sync.WaitGroup
	for ti, t := range towers {
		out := res[ti*len(appts) : (ti+1)*len(appts)]
		for j := range out {
			out[j] = ItemResult{Tower: t, Index: j, Locator: appts[j].Locator}
		}
		wg.Go(func() { t.sendAll(ctx, appts, out, sem, prog) })
	}
	wg.Wait()
	return res
}

// AddAppointments is SendMany for this tower alone.
func (t *Tower) AddAppointments(ctx context.Context, appts []teos.Appointment, opts SendOptions) []ItemResult {
	return SendMany(ctx, []*Tower{t}, appts, opts)
}

func (t *Tower) sendAll(ctx context.Context, appts []teos.Appointment, out []ItemResult, sem chan struct{}, prog *progress) {
	if t == nil {
		for i := range out {
			out[i].Err = errors.New("nil tower")
		}
		prog.add(len(out))
		return
	}
	if err := t.Misbehaving(); err != nil {
		for i := range out {
			out[i].Err = err
		}
		prog.add(len(out))
		return
	}
	all := make([]int, len(appts))
	for i := range all {
		all[i] = i
	}
	if len(appts) > 1 && t.supportsBatch(ctx, sem) {
		t.sendBatches(ctx, appts, out, all, sem, prog)
		return
	}
	t.sendSingles(ctx, appts, out, all, sem, prog)
}

func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// supportsBatch probes GET /info once. A definite answer (404/405, or the extension missing
// from /info) is remembered; a failed probe is not, and falls back to single requests.
func (t *Tower) supportsBatch(ctx context.Context, sem chan struct{}) bool {
	t.mu.Lock()
	state := t.batch
	t.mu.Unlock()
	if state != batchUnknown {
		return state == batchYes
	}
	if acquire(ctx, sem) != nil {
		return false
	}
	info, err := t.Info(ctx)
	<-sem
	if err == nil {
		t.mu.Lock()
		t.extensions = info.Extensions
		t.mu.Unlock()
	}
	switch {
	case err == nil && info.HasExtension(ExtAddAppointments):
		state = batchYes
	case err == nil || isNotSupported(err):
		state = batchNo
	default:
		return false
	}
	t.mu.Lock()
	t.batch = state
	t.mu.Unlock()
	return state == batchYes
}

func isNotSupported(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && (apiErr.HTTPStatus == http.StatusNotFound || apiErr.HTTPStatus == http.StatusMethodNotAllowed)
}

func (t *Tower) sendSingles(ctx context.Context, appts []teos.Appointment, out []ItemResult, idxs []int, sem chan struct{}, prog *progress) {
	var wg sync.WaitGroup
	for _, i := range idxs {
		if err := acquire(ctx, sem); err != nil {
			out[i].Err = err
			prog.add(1)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i].Receipt, out[i].Err = t.AddAppointment(ctx, appts[i])
			prog.add(1)
		})
	}
	wg.Wait()
}

type batchRequest struct {
	Appointments []addRequest `json:"appointments"`
}

type batchResponse struct {
	Results []json.RawMessage `json:"results"`
}

// batchItem is one entry of results: a receipt or an error.
type batchItem struct {
	addResponse
	errorJSON
}

// batchEnvelope is the size of `{"appointments":[]}`.
const batchEnvelope = len(`{"appointments":[]}`)

// chunk splits idxs into batches within the item and body limits.
func (t *Tower) chunk(appts []teos.Appointment, idxs []int) [][]int {
	var chunks [][]int
	var cur []int
	size := batchEnvelope
	for _, i := range idxs {
		req := addRequest{Appointment: toJSON(&appts[i]), Signature: sigPlaceholder}
		b, _ := json.Marshal(req) // plain strings and numbers always encode
		n := len(b) + 1           // the comma
		if len(cur) > 0 && (len(cur) == t.maxBatchItems || size+n > MaxBatchBodyBytes) {
			chunks = append(chunks, cur)
			cur, size = nil, batchEnvelope
		}
		cur = append(cur, i)
		size += n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// sigPlaceholder stands in for a signature when sizing: zbase32 of 65 bytes is 104 characters.
var sigPlaceholder = strings.Repeat("y", 104)

func (t *Tower) sendBatches(ctx context.Context, appts []teos.Appointment, out []ItemResult, idxs []int, sem chan struct{}, prog *progress) {
	var wg sync.WaitGroup
	for _, chunk := range t.chunk(appts, idxs) {
		if err := acquire(ctx, sem); err != nil {
			for _, i := range chunk {
				out[i].Err = err
			}
			prog.add(len(chunk))
			continue
		}
		wg.Go(func() {
			err := t.sendBatch(ctx, appts, out, chunk)
			<-sem
			if isNotSupported(err) {
				// /info promised the extension but the route is missing: stop using it.
				t.mu.Lock()
				t.batch = batchNo
				t.mu.Unlock()
				t.sendSingles(ctx, appts, out, chunk, sem, prog)
				return
			}
			if err != nil {
				for _, i := range chunk {
					out[i].Err = err
				}
			}
			prog.add(len(chunk))
		})
	}
	wg.Wait()
}

// sendBatch posts one chunk and fills its results; an error is for the whole chunk.
func (t *Tower) sendBatch(ctx context.Context, appts []teos.Appointment, out []ItemResult, chunk []int) error {
	if err := t.Misbehaving(); err != nil {
		return err
	}
	req := batchRequest{Appointments: make([]addRequest, len(chunk))}
	for k, i := range chunk {
		req.Appointments[k] = t.newAddRequest(&appts[i])
	}
	body, hdr, err := t.encodeBatch(req) // compressed when the tower takes it (upload.go)
	if err != nil {
		return err
	}
	var r batchResponse
	if err := t.doRaw(ctx, http.MethodPost, "/add_appointments", body, hdr, &r); err != nil {
		return err
	}
	if len(r.Results) != len(chunk) {
		return fmt.Errorf("%w: %d results for %d appointments", ErrBadResponse, len(r.Results), len(chunk))
	}
	for k, i := range chunk {
		var item batchItem
		if err := json.Unmarshal(r.Results[k], &item); err != nil {
			out[i].Err = fmt.Errorf("%w: result %d: %w", ErrBadResponse, k, err)
			continue
		}
		if item.Error != nil && item.ErrorCode != nil {
			out[i].Err = &APIError{Code: *item.ErrorCode, Message: *item.Error}
			continue
		}
		out[i].Receipt, out[i].Err = t.verifyAdd(&req.Appointments[k], &item.addResponse)
	}
	return nil
}
