package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

const (
	defaultRetries   = 3
	defaultRetryBase = 500 * time.Millisecond
	maxBackoff       = 30 * time.Second
	// maxResponseBytes bounds what we read from a tower; a batch answer of 1000 receipts is
	// well under it. get_subscription_info, which grows with the user's appointments, has its
	// own bound (WithMaxLocators).
	maxResponseBytes = 8 << 20
)

// Tower is a client for one tower and one user key. It is safe for concurrent use.
type Tower struct {
	url     string
	id      teos.UserID
	key     *btcec.PrivateKey
	userID  teos.UserID
	http    *http.Client
	proxy   string // SOCKS5 proxy address, "" for none
	retries int
	base    time.Duration
	// maxBatchItems is MaxBatchItems; tests lower it.
	maxBatchItems int
	maxLocators   int // WithMaxLocators

	mu  sync.Mutex
	reg *teos.RegistrationReceipt
	// slots is the user's available slots as last reported to this Tower (registration or
	// any verified receipt; 0 until then): a renewal adds to what is left, not to what the
	// last registration gave.
	slots       uint32
	misbehaving error
	batch       batchSupport
	extensions  []string // from GET /info, once supportsBatch probed it
	encoding    string   // batch Content-Encoding when the tower takes it ("" = zstd)
}

// Option configures a Tower.
type Option func(*Tower)

// WithHTTPClient sets the HTTP client (for a proxy, TLS or a transport timeout).
func WithHTTPClient(c *http.Client) Option { return func(t *Tower) { t.http = c } }

// WithRetry sets how many times a transient failure is retried (0 disables retries) and the
// first backoff delay, which doubles on each retry (with jitter, capped at 30 s).
func WithRetry(maxRetries int, base time.Duration) Option {
	return func(t *Tower) { t.retries, t.base = max(maxRetries, 0), base }
}

// WithRegistration tells the Tower about a registration receipt obtained earlier, so that
// Register can check a renewal's expiry against it. Its slot count is not a floor: the slots
// may have been used since, and a renewal adds to what is left (the receipts of this Tower's
// own calls set the floor).
func WithRegistration(r teos.RegistrationReceipt) Option {
	return func(t *Tower) { t.reg = &r }
}

// New returns a client for the tower at baseURL ("http://host:port"; "http://" is added if
// missing) whose public key is towerID, acting as the user whose key is key (not nil).
func New(baseURL string, towerID teos.UserID, key *btcec.PrivateKey, opts ...Option) *Tower {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	t := &Tower{
		url:     strings.TrimRight(baseURL, "/"),
		id:      towerID,
		key:     key,
		userID:  teos.UserIDFromPubKey(key.PubKey()),
		http:    http.DefaultClient,
		retries: defaultRetries,
		base:    defaultRetryBase,

		maxBatchItems: MaxBatchItems,
		maxLocators:   DefaultMaxLocators,
	}
	for _, o := range opts {
		o(t)
	}
	t.applyProxy()
	return t
}

// ID is the tower id receipts are checked against.
func (t *Tower) ID() teos.UserID { return t.id }

// URL is the tower's base URL.
func (t *Tower) URL() string { return t.url }

// UserID is the user's id (the public key of the user key).
func (t *Tower) UserID() teos.UserID { return t.userID }

// Registration returns the last registration receipt verified (or given by WithRegistration).
func (t *Tower) Registration() (teos.RegistrationReceipt, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reg == nil {
		return teos.RegistrationReceipt{}, false
	}
	return *t.reg, true
}

// Misbehaving returns the error that marked the tower as misbehaving (a *MisbehaviorError),
// or nil.
func (t *Tower) Misbehaving() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.misbehaving
}

// markMisbehaving records the first proof of misbehaviour and returns an error wrapping
// ErrMisbehaving.
func (t *Tower) markMisbehaving(format string, args ...any) error {
	return t.markMisbehavingProof(nil, format, args...)
}

// markMisbehavingProof is markMisbehaving with the receipt that shows it.
func (t *Tower) markMisbehavingProof(proof *MisbehaviorProof, format string, args ...any) error {
	err := &MisbehaviorError{TowerID: t.id, Reason: fmt.Sprintf(format, args...), Proof: proof}
	t.mu.Lock()
	if t.misbehaving == nil {
		t.misbehaving = err
	}
	t.mu.Unlock()
	return err
}

// signatureProof is the evidence of a receipt signature over msg that is not the tower's.
func signatureProof(loc, sig string, msg []byte) *MisbehaviorProof {
	p := &MisbehaviorProof{Locator: loc, Message: hex.EncodeToString(msg), Signature: sig}
	if id, err := wtcrypto.RecoverUserID(msg, sig); err == nil {
		p.RecoveredID = id.String()
	}
	return p
}

// Info is the answer to GET /info (batch extension).
type Info struct {
	TowerID    teos.UserID
	Version    string
	Extensions []string
}

// HasExtension reports whether the tower advertises ext.
func (i *Info) HasExtension(ext string) bool {
	for _, e := range i.Extensions {
		if e == ext {
			return true
		}
	}
	return false
}

type infoJSON struct {
	TowerID    string   `json:"tower_id"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// Discover asks the tower at baseURL for its id (GET /info) and returns a Tower using it.
// The id is taken on trust: see the package documentation.
func Discover(ctx context.Context, baseURL string, key *btcec.PrivateKey, opts ...Option) (*Tower, error) {
	t := New(baseURL, teos.UserID{}, key, opts...)
	info, err := t.Info(ctx)
	if err != nil {
		return nil, err
	}
	t.id = info.TowerID
	return t, nil
}

// Info calls GET /info. A tower without the batch extension answers 404 or 405 (*APIError).
func (t *Tower) Info(ctx context.Context) (*Info, error) {
	var r infoJSON
	if err := t.do(ctx, http.MethodGet, "/info", nil, &r); err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(r.TowerID)
	if err != nil {
		return nil, fmt.Errorf("%w: tower_id: %w", ErrBadResponse, err)
	}
	id, err := teos.ParseUserID(b)
	if err != nil {
		return nil, fmt.Errorf("%w: tower_id: %w", ErrBadResponse, err)
	}
	return &Info{TowerID: id, Version: r.Version, Extensions: r.Extensions}, nil
}

// Ping checks that the tower answers GET /ping with a 2xx.
func (t *Tower) Ping(ctx context.Context) error {
	return t.do(ctx, http.MethodGet, "/ping", nil, nil)
}

type registerRequest struct {
	UserID string `json:"user_id"`
}

type registerResponse struct {
	UserID                string `json:"user_id"`
	AvailableSlots        uint32 `json:"available_slots"`
	SubscriptionStart     uint32 `json:"subscription_start"`
	SubscriptionExpiry    uint32 `json:"subscription_expiry"`
	SubscriptionSignature string `json:"subscription_signature"`
}

// Subscription is a verified registration receipt and the tower's signature over it.
type Subscription struct {
	teos.RegistrationReceipt
	Signature string
}

// Register registers (or renews) the user. The receipt must be signed by the tower id and, for
// a renewal, raise the expiry and the slots left as last reported to this Tower; otherwise the
// tower is marked misbehaving.
func (t *Tower) Register(ctx context.Context) (*Subscription, error) {
	if err := t.Misbehaving(); err != nil {
		return nil, err
	}
	var r registerResponse
	if err := t.do(ctx, http.MethodPost, "/register", registerRequest{t.userID.String()}, &r); err != nil {
		return nil, err
	}
	rec := teos.RegistrationReceipt{
		UserID:             t.userID,
		AvailableSlots:     r.AvailableSlots,
		SubscriptionStart:  r.SubscriptionStart,
		SubscriptionExpiry: r.SubscriptionExpiry,
	}
	if r.UserID != t.userID.String() {
		return nil, t.markMisbehaving("registration receipt for user %q, want %s", r.UserID, t.userID)
	}
	if !wtcrypto.VerifySignature(rec.SignedBytes(), r.SubscriptionSignature, t.id) {
		reason := "registration receipt not signed by the tower"
		if _, known := t.Registration(); !known {
			// No receipt of this tower verified yet: most likely a wrong id (the CLN plugin asks).
			reason += ": is the tower id right?"
		}
		return nil, t.markMisbehavingProof(signatureProof("", r.SubscriptionSignature, rec.SignedBytes()), "%s", reason)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev := t.reg; prev != nil && (rec.AvailableSlots <= t.slots || rec.SubscriptionExpiry <= prev.SubscriptionExpiry) {
		err := &MisbehaviorError{TowerID: t.id, Reason: fmt.Sprintf("renewal to %d slots / expiry %d does not extend %d slots / expiry %d",
			rec.AvailableSlots, rec.SubscriptionExpiry, t.slots, prev.SubscriptionExpiry)}
		if t.misbehaving == nil {
			t.misbehaving = err
		}
		return nil, err
	}
	t.reg, t.slots = &rec, rec.AvailableSlots
	return &Subscription{RegistrationReceipt: rec, Signature: r.SubscriptionSignature}, nil
}

type appointmentJSON struct {
	Locator       string `json:"locator"`
	EncryptedBlob string `json:"encrypted_blob"`
	ToSelfDelay   uint32 `json:"to_self_delay"`
}

func toJSON(a *teos.Appointment) appointmentJSON {
	return appointmentJSON{a.Locator.String(), hex.EncodeToString(a.EncryptedBlob), a.ToSelfDelay}
}

func (j *appointmentJSON) decode() (teos.Appointment, error) {
	var a teos.Appointment
	lb, err := hex.DecodeString(j.Locator)
	if err != nil {
		return a, fmt.Errorf("locator: %w", err)
	}
	if a.Locator, err = teos.LocatorFromBytes(lb); err != nil {
		return a, err
	}
	if a.EncryptedBlob, err = hex.DecodeString(j.EncryptedBlob); err != nil {
		return a, fmt.Errorf("encrypted_blob: %w", err)
	}
	a.ToSelfDelay = j.ToSelfDelay
	return a, nil
}

type addRequest struct {
	Appointment appointmentJSON `json:"appointment"`
	Signature   string          `json:"signature"`
}

type addResponse struct {
	Locator            string `json:"locator"`
	StartBlock         uint32 `json:"start_block"`
	Signature          string `json:"signature"`
	AvailableSlots     uint32 `json:"available_slots"`
	SubscriptionExpiry uint32 `json:"subscription_expiry"`
}

// AppointmentReceipt is a verified answer to add_appointment.
type AppointmentReceipt struct {
	Locator    teos.Locator
	StartBlock uint32
	// UserSignature is the user's signature of the appointment; TowerSignature signs it with
	// StartBlock (teos.AppointmentReceiptBytes).
	UserSignature      string
	TowerSignature     string
	AvailableSlots     uint32
	SubscriptionExpiry uint32
}

func (t *Tower) newAddRequest(a *teos.Appointment) addRequest {
	return addRequest{Appointment: toJSON(a), Signature: wtcrypto.SignMessage(a.SignedBytes(), t.key)}
}

// verifyAdd checks an add_appointment answer for req and turns it into a receipt.
func (t *Tower) verifyAdd(req *addRequest, r *addResponse) (*AppointmentReceipt, error) {
	if r.Locator != req.Appointment.Locator {
		return nil, t.markMisbehaving("receipt for locator %q, sent %s", r.Locator, req.Appointment.Locator)
	}
	if msg := teos.AppointmentReceiptBytes(req.Signature, r.StartBlock); !wtcrypto.VerifySignature(msg, r.Signature, t.id) {
		return nil, t.markMisbehavingProof(signatureProof(req.Appointment.Locator, r.Signature, msg),
			"appointment receipt for %s not signed by the tower", req.Appointment.Locator)
	}
	var loc teos.Locator
	b, _ := hex.DecodeString(r.Locator) // equal to what we sent, so valid
	copy(loc[:], b)
	t.noteSlots(r.AvailableSlots)
	return &AppointmentReceipt{
		Locator:            loc,
		StartBlock:         r.StartBlock,
		UserSignature:      req.Signature,
		TowerSignature:     r.Signature,
		AvailableSlots:     r.AvailableSlots,
		SubscriptionExpiry: r.SubscriptionExpiry,
	}, nil
}

// noteSlots records the available slots a verified receipt reports.
func (t *Tower) noteSlots(n uint32) {
	t.mu.Lock()
	t.slots = n
	t.mu.Unlock()
}

// AddAppointment signs and sends a, and verifies the receipt.
func (t *Tower) AddAppointment(ctx context.Context, a teos.Appointment) (*AppointmentReceipt, error) {
	if err := t.Misbehaving(); err != nil {
		return nil, err
	}
	req := t.newAddRequest(&a)
	var r addResponse
	if err := t.do(ctx, http.MethodPost, "/add_appointment", req, &r); err != nil {
		return nil, err
	}
	return t.verifyAdd(&req, &r)
}

// Appointment statuses returned by GetAppointment.
const (
	StatusBeingWatched     = "being_watched"
	StatusDisputeResponded = "dispute_responded"
)

// AppointmentState is the answer to get_appointment: Appointment is set while the tower
// watches it, Tracker once it responded to the dispute.
type AppointmentState struct {
	Status      string
	Appointment *teos.Appointment
	Tracker     *Tracker
}

// Tracker is a dispute the tower responded to. Txids are in display order (as bitcoind
// prints them); PenaltyRawTx is the serialized penalty.
type Tracker struct {
	DisputeTxID  string
	PenaltyTxID  string
	PenaltyRawTx []byte
}

type getRequest struct {
	Locator   string `json:"locator"`
	Signature string `json:"signature"`
}

type getResponse struct {
	Appointment json.RawMessage `json:"appointment"`
	Status      string          `json:"status"`
}

type trackerJSON struct {
	DisputeTxID  string `json:"dispute_txid"`
	PenaltyTxID  string `json:"penalty_txid"`
	PenaltyRawTx string `json:"penalty_rawtx"`
}

// GetAppointment asks what the tower holds for loc. Not found is an *APIError with code
// teos.ErrCodeAppointmentNotFound.
func (t *Tower) GetAppointment(ctx context.Context, loc teos.Locator) (*AppointmentState, error) {
	req := getRequest{loc.String(), wtcrypto.SignMessage(teos.GetAppointmentMessage(loc), t.key)}
	var r getResponse
	if err := t.do(ctx, http.MethodPost, "/get_appointment", req, &r); err != nil {
		return nil, err
	}
	st := &AppointmentState{Status: r.Status}
	switch r.Status {
	case StatusBeingWatched:
		var j appointmentJSON
		if err := json.Unmarshal(r.Appointment, &j); err != nil {
			return nil, fmt.Errorf("%w: appointment: %w", ErrBadResponse, err)
		}
		a, err := j.decode()
		if err != nil {
			return nil, fmt.Errorf("%w: appointment: %w", ErrBadResponse, err)
		}
		if a.Locator != loc {
			return nil, fmt.Errorf("%w: appointment for locator %s, asked %s", ErrBadResponse, a.Locator, loc)
		}
		st.Appointment = &a
	case StatusDisputeResponded:
		var j trackerJSON
		if err := json.Unmarshal(r.Appointment, &j); err != nil {
			return nil, fmt.Errorf("%w: tracker: %w", ErrBadResponse, err)
		}
		raw, err := hex.DecodeString(j.PenaltyRawTx)
		if err != nil {
			return nil, fmt.Errorf("%w: penalty_rawtx: %w", ErrBadResponse, err)
		}
		dispute, err := chainhash.NewHashFromStr(j.DisputeTxID)
		if err != nil || teos.NewLocator(*dispute) != loc {
			return nil, fmt.Errorf("%w: dispute_txid %q does not match locator %s", ErrBadResponse, j.DisputeTxID, loc)
		}
		st.Tracker = &Tracker{DisputeTxID: j.DisputeTxID, PenaltyTxID: j.PenaltyTxID, PenaltyRawTx: raw}
	default:
		return nil, fmt.Errorf("%w: unknown status %q", ErrBadResponse, r.Status)
	}
	return st, nil
}

// streamDecoder is an answer that reads the body itself, as it arrives, rather than from a
// buffer of at most maxResponseBytes. Failures of the transport under it come back as
// *readError, so that they are retried like any other.
type streamDecoder interface {
	decodeStream(body io.Reader, contentLength int64) error
}

// transientError marks a failure worth retrying. It stays on the error a call returns once
// its retries are spent, for IsTransient.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// IsTransient reports whether err, returned by a call of this package, is a failure that says
// nothing against the request and may pass: the tower could not be reached (through the proxy,
// if any), the connection was cut or timed out, or the tower (or a reverse proxy before it)
// answered 503, 502, 504, 429 or 408 (transientStatus), as a tower that is stopping or has lost
// bitcoind does. Whatever it was asked was not refused, and may be sent again later. A refusal
// (*APIError with another 4xx), a misbehaving tower or a malformed answer is not transient.
func IsTransient(err error) bool {
	var tr *transientError
	return errors.As(err, &tr)
}

// do sends one request, retrying transient failures, and decodes a 200 body into out.
func (t *Tower) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
	}
	return t.doRaw(ctx, method, path, body, nil, out)
}

// doRaw is do for a body already encoded, sent with the extra headers hdr.
func (t *Tower) doRaw(ctx context.Context, method, path string, body []byte, hdr http.Header, out any) error {
	return t.doHooked(ctx, method, path, body, hdr, out, nil)
}

// doHooked is doRaw calling onTransient with each transient failure it retries or returns.
func (t *Tower) doHooked(ctx context.Context, method, path string, body []byte, hdr http.Header, out any, onTransient func(error)) error {
	for attempt := 0; ; attempt++ {
		err := t.once(ctx, method, path, body, hdr, out)
		var tr *transientError
		if !errors.As(err, &tr) {
			return err
		}
		if onTransient != nil {
			onTransient(tr.err)
		}
		if attempt >= t.retries || ctx.Err() != nil {
			return tr
		}
		timer := time.NewTimer(t.backoff(attempt))
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%s %s: %w (last error: %w)", method, path, ctx.Err(), tr)
		case <-timer.C:
		}
	}
}

// backoff is base·2^attempt, capped, with "equal jitter": half fixed, half random, so
// clients that failed together do not retry together.
func (t *Tower) backoff(attempt int) time.Duration {
	d := t.base << min(attempt, 20)
	if d <= 0 || d > maxBackoff {
		d = maxBackoff
	}
	half := d / 2
	return half + rand.N(half+1)
}

func (t *Tower) once(ctx context.Context, method, path string, body []byte, hdr http.Header, out any) error {
	if t.proxy == "" && isOnion(t.url) {
		return fmt.Errorf("%s %s: %w", method, path, ErrOnionNeedsProxy)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hc, reqCtx := t.http, ctx
	sd, streamed := out.(streamDecoder)
	var dog *watchdog
	if streamed && t.http.Timeout > 0 {
		// The answer grows with the user's appointments and may rightly take longer than the
		// timeout over a slow link: the timeout bounds each silence, and the answer's size
		// the whole (watchdog).
		c := *t.http
		c.Timeout = 0
		hc = &c
		var cancel context.CancelCauseFunc
		reqCtx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		dog = newWatchdog(t.http.Timeout, cancel)
		defer dog.stop()
	}
	req, err := http.NewRequestWithContext(reqCtx, method, t.url+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		err = fmt.Errorf("%s %s: %w", method, path, err)
		if ctx.Err() != nil {
			return err
		}
		return &transientError{idleCause(reqCtx, err)}
	}
	defer resp.Body.Close()
	if streamed && resp.StatusCode/100 == 2 {
		var body io.Reader = resp.Body
		if dog != nil {
			body = &watchedBody{resp.Body, dog}
		}
		err := sd.decodeStream(body, resp.ContentLength)
		var re *readError
		if errors.As(err, &re) {
			err = idleCause(reqCtx, fmt.Errorf("%s %s: read reply: %w", method, path, re.err))
			if ctx.Err() != nil {
				return err
			}
			return &transientError{err}
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		err = fmt.Errorf("%s %s: read reply: %w", method, path, err)
		if ctx.Err() != nil {
			return err
		}
		return &transientError{err}
	}
	if resp.StatusCode/100 != 2 {
		apiErr := decodeAPIError(resp.StatusCode, raw)
		if transientStatus(resp.StatusCode) {
			return &transientError{apiErr}
		}
		return apiErr
	}
	if out == nil {
		return nil
	}
	if len(raw) > maxResponseBytes {
		return fmt.Errorf("%w: %s %s: answer over %d bytes", ErrResponseTooLarge, method, path, maxResponseBytes)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrBadResponse, method, path, err)
	}
	return nil
}

// transientStatus reports whether an HTTP status says "not now" rather than "no": teosd's 503,
// and a reverse proxy's while teosd behind it restarts or is slow (502, 504) or while it
// limits the client's rate or found its body slow (429, 408). teosd itself sends neither 408
// nor 429.
func transientStatus(status int) bool {
	switch status {
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout,
		http.StatusTooManyRequests, http.StatusRequestTimeout:
		return true
	}
	return false
}

type errorJSON struct {
	Error     *string `json:"error"`
	ErrorCode *int    `json:"error_code"`
}

func decodeAPIError(status int, raw []byte) *APIError {
	e := &APIError{HTTPStatus: status}
	var j errorJSON
	if json.Unmarshal(raw, &j) == nil && j.Error != nil && j.ErrorCode != nil {
		e.Code, e.Message = *j.ErrorCode, *j.Error
		return e
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	e.Message = msg
	return e
}
