package client

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// fakeTower speaks the public HTTP API (and optionally the batch extension) with scripted faults.
type fakeTower struct {
	t   *testing.T
	key *btcec.PrivateKey
	id  teos.UserID
	srv *httptest.Server

	mu         sync.Mutex
	calls      map[string]int
	fail503    int  // answer 503/32 to this many requests first
	dropConns  int  // close this many connections without an answer first
	batch      bool // serve /info with the extension and /add_appointments
	info       bool // serve /info (without the extension unless batch)
	badRegSig  bool // sign registration receipts with another key
	badAddSig  bool // sign appointment receipts with another key
	noRenew    bool // answer a renewal with unchanged totals
	delay      time.Duration
	rejectLoc  map[teos.Locator]bool // per-appointment 400/35
	slots      uint32
	expiry     uint32
	batchSizes []int
	appts      map[teos.Locator]teos.Appointment
}

func newFakeTower(t *testing.T) *fakeTower {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTower{t: t, key: k, id: teos.UserIDFromPubKey(k.PubKey()), calls: map[string]int{},
		rejectLoc: map[teos.Locator]bool{}, appts: map[teos.Locator]teos.Appointment{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTower) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[path]
}

func (f *fakeTower) set(fn func(f *fakeTower)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(code int, msg string) map[string]any {
	return map[string]any{"error": msg, "error_code": code}
}

func (f *fakeTower) signer(bad bool) *btcec.PrivateKey {
	if bad {
		k, _ := btcec.NewPrivateKey()
		return k
	}
	return f.key
}

func (f *fakeTower) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls[r.URL.Path]++
	delay := f.delay
	if f.dropConns > 0 {
		f.dropConns--
		f.mu.Unlock()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	if f.fail503 > 0 {
		f.fail503--
		f.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, apiErr(teos.ErrCodeServiceUnavailable, "Service currently unavailable"))
		return
	}
	f.mu.Unlock()
	if delay > 0 {
		// Reading the body lets the server notice the client hanging up.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch r.URL.Path {
	case "/ping":
		w.WriteHeader(http.StatusOK)
	case "/info":
		f.serveInfo(w)
	case "/register":
		f.serveRegister(w, r)
	case "/add_appointment":
		var req addRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, apiErr(teos.ErrCodeInvalidRequestFormat, err.Error()))
			return
		}
		status, body := f.add(req)
		writeJSON(w, status, body)
	case "/add_appointments":
		f.serveBatch(w, r)
	case "/get_appointment":
		f.serveGet(w, r)
	case "/get_subscription_info":
		f.mu.Lock()
		locs := []string{}
		for l := range f.appts {
			locs = append(locs, l.String())
		}
		resp := map[string]any{"available_slots": f.slots, "subscription_expiry": f.expiry, "locators": locs}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, resp)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (f *fakeTower) serveInfo(w http.ResponseWriter) {
	f.mu.Lock()
	info, batch := f.info || f.batch, f.batch
	f.mu.Unlock()
	if !info {
		http.NotFound(w, nil)
		return
	}
	ext := []string{}
	if batch {
		ext = append(ext, ExtAddAppointments)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tower_id": f.id.String(), "version": "fake", "extensions": ext})
}

func (f *fakeTower) serveRegister(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiErr(teos.ErrCodeInvalidRequestFormat, err.Error()))
		return
	}
	b, _ := hex.DecodeString(req.UserID)
	user, err := teos.ParseUserID(b)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiErr(teos.ErrCodeWrongFieldFormat, "bad key"))
		return
	}
	f.mu.Lock()
	if !f.noRenew || f.expiry == 0 {
		f.slots += 100
		f.expiry += 1000
	}
	rec := teos.RegistrationReceipt{UserID: user, AvailableSlots: f.slots, SubscriptionStart: 500, SubscriptionExpiry: f.expiry}
	bad := f.badRegSig
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, registerResponse{
		UserID: req.UserID, AvailableSlots: rec.AvailableSlots, SubscriptionStart: rec.SubscriptionStart,
		SubscriptionExpiry: rec.SubscriptionExpiry, SubscriptionSignature: wtcrypto.SignMessage(rec.SignedBytes(), f.signer(bad)),
	})
}

// add handles one appointment and returns the status and body the tower would send.
func (f *fakeTower) add(req addRequest) (int, any) {
	a, err := req.Appointment.decode()
	if err != nil {
		return http.StatusBadRequest, apiErr(teos.ErrCodeWrongFieldFormat, err.Error())
	}
	if _, err := wtcrypto.RecoverUserID(a.SignedBytes(), req.Signature); err != nil {
		return http.StatusUnauthorized, apiErr(teos.ErrCodeInvalidSignatureOrSubscriptionError, "Invalid signature")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rejectLoc[a.Locator] {
		return http.StatusBadRequest, apiErr(teos.ErrCodeAppointmentAlreadyTriggered, "The provided appointment has already been triggered")
	}
	f.appts[a.Locator] = a
	const start = 700
	return http.StatusOK, addResponse{
		Locator: a.Locator.String(), StartBlock: start,
		Signature:      wtcrypto.SignMessage(teos.AppointmentReceiptBytes(req.Signature, start), f.signer(f.badAddSig)),
		AvailableSlots: f.slots, SubscriptionExpiry: f.expiry,
	}
}

func (f *fakeTower) serveBatch(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	batch := f.batch
	f.mu.Unlock()
	if !batch {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength > MaxBatchBodyBytes {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	var req batchRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Appointments) == 0 || len(req.Appointments) > MaxBatchItems {
		writeJSON(w, http.StatusBadRequest, apiErr(teos.ErrCodeInvalidRequestFormat, "bad batch"))
		return
	}
	f.mu.Lock()
	f.batchSizes = append(f.batchSizes, len(req.Appointments))
	f.mu.Unlock()
	results := make([]any, len(req.Appointments))
	for i, a := range req.Appointments {
		_, results[i] = f.add(a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
}

func (f *fakeTower) serveGet(w http.ResponseWriter, r *http.Request) {
	var req getRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiErr(teos.ErrCodeInvalidRequestFormat, err.Error()))
		return
	}
	b, _ := hex.DecodeString(req.Locator)
	loc, _ := teos.LocatorFromBytes(b)
	if _, err := wtcrypto.RecoverUserID(teos.GetAppointmentMessage(loc), req.Signature); err != nil {
		writeJSON(w, http.StatusUnauthorized, apiErr(teos.ErrCodeInvalidSignatureOrSubscriptionError, "User cannot be authenticated"))
		return
	}
	f.mu.Lock()
	a, ok := f.appts[loc]
	f.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, apiErr(teos.ErrCodeAppointmentNotFound, "Appointment not found"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"appointment": toJSON(&a), "status": StatusBeingWatched})
}
