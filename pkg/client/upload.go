package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// Extensions of /add_appointments a tower may list in GET /info.
const (
	// ExtCompressedUploads: the body may be sent with Content-Encoding zstd or gzip.
	ExtCompressedUploads = teos.ExtensionCompressedUploads
	// ExtStreamedUploads: with Accept: application/x-ndjson, one result line per item as
	// soon as the item is durable.
	ExtStreamedUploads = teos.ExtensionStreamedUploads
	// ExtDeleteAppointment: POST /delete_appointment.
	ExtDeleteAppointment = teos.ExtensionDeleteAppointment
)

// Content encodings for WithCompression.
const (
	EncodingNone = "identity"
	EncodingZstd = "zstd"
	EncodingGzip = "gzip"
)

// WithCompression picks the Content-Encoding of batch uploads to towers that list
// ExtCompressedUploads: EncodingZstd (the default), EncodingGzip or EncodingNone.
func WithCompression(encoding string) Option { return func(t *Tower) { t.encoding = encoding } }

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
)

// compress encodes body; the zstd encoder is shared (EncodeAll is safe for concurrent use).
func compress(encoding string, body []byte) ([]byte, error) {
	switch encoding {
	case EncodingZstd:
		zstdOnce.Do(func() { zstdEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1)) })
		return zstdEnc.EncodeAll(body, make([]byte, 0, len(body)/2)), nil
	case EncodingGzip:
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		if _, err := w.Write(body); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	default:
		return body, nil
	}
}

func (t *Tower) hasExtension(ext string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Contains(t.extensions, ext)
}

// encodeBatch is req's body and headers: compressed if the tower takes it.
func (t *Tower) encodeBatch(req batchRequest) ([]byte, http.Header, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, nil, fmt.Errorf("encode /add_appointments: %w", err)
	}
	enc := t.encoding
	if enc == "" {
		enc = EncodingZstd
	}
	if enc == EncodingNone || !t.hasExtension(ExtCompressedUploads) {
		return body, nil, nil
	}
	if body, err = compress(enc, body); err != nil {
		return nil, nil, fmt.Errorf("compress /add_appointments: %w", err)
	}
	return body, http.Header{"Content-Encoding": {enc}}, nil
}

// DeletionReceipt is a verified answer to delete_appointment.
type DeletionReceipt struct {
	Locator       teos.Locator
	DeletionBlock uint32
	// UserSignature signs teos.DeleteAppointmentMessage(Locator); TowerSignature signs
	// teos.DeletionReceiptBytes(UserSignature, DeletionBlock).
	UserSignature      string
	TowerSignature     string
	AvailableSlots     uint32
	SubscriptionExpiry uint32
}

type deleteResponse struct {
	Locator            string `json:"locator"`
	DeletionBlock      uint32 `json:"deletion_block"`
	Signature          string `json:"signature"`
	AvailableSlots     uint32 `json:"available_slots"`
	SubscriptionExpiry uint32 `json:"subscription_expiry"`
}

// DeleteAppointment asks the tower to delete the user's appointment at loc and give its slots
// back (extension ExtDeleteAppointment), and verifies the deletion receipt; a receipt not
// signed by the tower marks it misbehaving. Not found is an *APIError with code
// teos.ErrCodeAppointmentNotFound, wrapped with ErrNoDeletionReceipt when an earlier try's
// answer was lost; a triggered appointment, teos.ErrCodeAppointmentAlreadyTriggered.
func (t *Tower) DeleteAppointment(ctx context.Context, loc teos.Locator) (*DeletionReceipt, error) {
	if err := t.Misbehaving(); err != nil {
		return nil, err
	}
	// A tower without the route (rust-teos) would answer a bare 404 "Not Found", which reads
	// like "no such appointment": ask GET /info first. A failed probe leaves it to the request.
	t.supportsBatch(ctx, make(chan struct{}, 1))
	t.mu.Lock()
	probed := t.batch != batchUnknown
	t.mu.Unlock()
	if probed && !t.hasExtension(ExtDeleteAppointment) {
		return nil, ErrNoDeleteExtension
	}
	req := getRequest{loc.String(), wtcrypto.SignMessage(teos.DeleteAppointmentMessage(loc), t.key)}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode /delete_appointment: %w", err)
	}
	// A try that may have reached the tower but whose answer was lost (connection cut, a
	// proxy's 502/504) may have deleted the appointment: the retry then finds nothing. Only a
	// failed dial (or SOCKS connect), the tower's own 503 (refused before doing anything) or a
	// reverse proxy's 429/408 (refused before passing it on) surely did not.
	lost := false
	var r deleteResponse
	err = t.doHooked(ctx, http.MethodPost, "/delete_appointment", body, nil, &r, func(err error) {
		var apiErr *APIError
		var opErr *net.OpError
		if errors.As(err, &apiErr) && (apiErr.HTTPStatus == http.StatusServiceUnavailable ||
			apiErr.HTTPStatus == http.StatusTooManyRequests || apiErr.HTTPStatus == http.StatusRequestTimeout) ||
			errors.As(err, &opErr) && (opErr.Op == "dial" || strings.HasPrefix(opErr.Op, "socks")) {
			return
		}
		lost = true
	})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == teos.ErrCodeAppointmentNotFound && lost {
		return nil, fmt.Errorf("%w: %w", ErrNoDeletionReceipt, err)
	}
	if err != nil {
		return nil, err
	}
	if r.Locator != req.Locator {
		return nil, t.markMisbehaving("deletion receipt for locator %q, asked %s", r.Locator, loc)
	}
	if msg := teos.DeletionReceiptBytes(req.Signature, r.DeletionBlock); !wtcrypto.VerifySignature(msg, r.Signature, t.id) {
		return nil, t.markMisbehavingProof(signatureProof(req.Locator, r.Signature, msg), "deletion receipt for %s not signed by the tower", loc)
	}
	t.noteSlots(r.AvailableSlots)
	return &DeletionReceipt{
		Locator:            loc,
		DeletionBlock:      r.DeletionBlock,
		UserSignature:      req.Signature,
		TowerSignature:     r.Signature,
		AvailableSlots:     r.AvailableSlots,
		SubscriptionExpiry: r.SubscriptionExpiry,
	}, nil
}

// ErrNoBatchExtension is returned by Upload for a tower whose GET /info does not list
// ExtAddAppointments (a rust-teos tower answers 404): it will not change by retrying.
var ErrNoBatchExtension = errors.New("the tower does not offer the add_appointments extension")

// ErrNoDeletionReceipt is wrapped (with the tower's "not found" *APIError) by
// DeleteAppointment when a try reached the tower but its answer was lost, and the retry found
// the appointment gone: that try most likely deleted it. The appointment is not held any more,
// but there is no deletion receipt.
var ErrNoDeletionReceipt = errors.New("the appointment is gone, but the answer to an earlier try of the deletion was lost: no deletion receipt")

// ErrNoDeleteExtension is returned by DeleteAppointment for a tower whose GET /info does not
// list ExtDeleteAppointment (a rust-teos tower has no GET /info).
var ErrNoDeleteExtension = errors.New("the tower does not offer the delete_appointment extension")

// UploadResult is the outcome of one item of Upload: a verified Receipt or Err (the tower's
// refusal of that item).
type UploadResult struct {
	Index   int
	Locator teos.Locator
	Receipt *AppointmentReceipt
	Err     error
}

// Upload sends appts[i] for every i in idxs to the tower with the batch extension, at most
// MaxBatchItems per request and one request at a time, and calls onResult (never
// concurrently) for each item as soon as the tower has stored it or refused it: with
// ExtStreamedUploads that is line by line as each commit group becomes durable, otherwise
// once per request. It returns the first error that stopped it (the tower unreachable, a cut
// stream, a misbehaving tower, ctx done); the items that got no onResult call then were not
// acknowledged and may be sent again (a repeated appointment is an update of itself).
func (t *Tower) Upload(ctx context.Context, appts []teos.Appointment, idxs []int, onResult func(UploadResult)) error {
	if err := t.Misbehaving(); err != nil {
		return err
	}
	sem := make(chan struct{}, 1)
	if !t.supportsBatch(ctx, sem) {
		if err := ctx.Err(); err != nil {
			return err
		}
		t.mu.Lock()
		known := t.batch == batchNo
		t.mu.Unlock()
		if known {
			return ErrNoBatchExtension
		}
		// The probe failed (tower unreachable, 503): worth trying again, unlike the above.
		return &transientError{errors.New("GET /info failed: cannot tell whether the tower offers the add_appointments extension")}
	}
	stream := t.hasExtension(ExtStreamedUploads)
	for _, chunk := range t.chunk(appts, idxs) {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if stream {
			err = t.uploadStream(ctx, appts, chunk, onResult)
		} else {
			out := make([]ItemResult, len(appts))
			if err = t.sendBatch(ctx, appts, out, chunk); err == nil {
				for _, i := range chunk {
					onResult(UploadResult{Index: i, Locator: appts[i].Locator, Receipt: out[i].Receipt, Err: out[i].Err})
				}
			}
		}
		if err != nil {
			return err
		}
		if err := t.Misbehaving(); err != nil {
			return err
		}
	}
	return nil
}

// streamItem is one line of a streamed answer.
type streamItem struct {
	Index *int `json:"index"`
	addResponse
	errorJSON
}

// maxStreamLine bounds one result line; a receipt or error is a few hundred bytes.
const maxStreamLine = 64 << 10

// uploadStream posts one chunk asking for a streamed answer and reports each line.
func (t *Tower) uploadStream(ctx context.Context, appts []teos.Appointment, chunk []int, onResult func(UploadResult)) error {
	req := batchRequest{Appointments: make([]addRequest, len(chunk))}
	for k, i := range chunk {
		req.Appointments[k] = t.newAddRequest(&appts[i])
	}
	body, hdr, err := t.encodeBatch(req)
	if err != nil {
		return err
	}
	// The HTTP client's timeout bounds each silence, not the whole stream, which may rightly
	// take longer than any one request: while the body goes out (a 2 MB batch over a slow Tor
	// circuit may take minutes) the wait for each piece of it, within the body's size at
	// minTransferRate, and then the wait for each line.
	hc := *t.http
	hc.Timeout = 0
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var dog *watchdog
	if t.http.Timeout > 0 {
		dog = newWatchdog(t.http.Timeout, cancel)
		defer dog.stop()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/add_appointments", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("POST /add_appointments: %w", err)
	}
	if dog != nil {
		hreq.Body = &watchedBody{hreq.Body, dog}
		hreq.GetBody = func() (io.ReadCloser, error) { // a retry on a stale kept-alive connection
			return &watchedBody{io.NopCloser(bytes.NewReader(body)), dog}, nil
		}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/x-ndjson")
	for k, v := range hdr {
		hreq.Header[k] = v
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return streamFault(ctx, fmt.Errorf("POST /add_appointments: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		apiErr := decodeAPIError(resp.StatusCode, raw)
		if transientStatus(resp.StatusCode) {
			return &transientError{apiErr}
		}
		return apiErr
	}
	answered := make([]bool, len(chunk))
	left := len(chunk)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxStreamLine)
	for sc.Scan() {
		if dog != nil {
			dog.heard()
		}
		var it streamItem
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			return fmt.Errorf("%w: stream line: %w", ErrBadResponse, err)
		}
		if it.Index == nil { // the tower ended the request early: a fault of its own (stopping)
			if it.Error != nil && it.ErrorCode != nil {
				return &transientError{&APIError{HTTPStatus: resp.StatusCode, Code: *it.ErrorCode, Message: *it.Error}}
			}
			return fmt.Errorf("%w: stream line without index", ErrBadResponse)
		}
		k := *it.Index
		if k < 0 || k >= len(chunk) || answered[k] {
			return fmt.Errorf("%w: stream result for item %d of %d (repeated or out of range)", ErrBadResponse, k, len(chunk))
		}
		answered[k] = true
		left--
		i := chunk[k]
		res := UploadResult{Index: i, Locator: appts[i].Locator}
		if it.Error != nil && it.ErrorCode != nil {
			res.Err = &APIError{Code: *it.ErrorCode, Message: *it.Error}
		} else if res.Receipt, res.Err = t.verifyAdd(&req.Appointments[k], &it.addResponse); res.Err != nil {
			return res.Err // misbehaving: stop
		}
		onResult(res)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: stream line over %d bytes", ErrBadResponse, maxStreamLine)
		}
		return streamFault(ctx, fmt.Errorf("POST /add_appointments: read stream: %w", err))
	}
	if left > 0 {
		return &transientError{fmt.Errorf("POST /add_appointments: stream ended with %d of %d items unanswered", left, len(chunk))}
	}
	return nil
}

// streamFault marks a stream's transport failure (or the tower's silence) transient, unless
// the caller's ctx ended it.
func streamFault(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, errIdle) {
		return err
	}
	return &transientError{idleCause(ctx, err)}
}
