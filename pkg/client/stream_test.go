package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// streamTower serves /info with the streamed batch extension and answers /add_appointments
// with one receipt line per item once it has read the whole body, as a teos-go tower does.
func streamTower(t *testing.T, f *fakeTower) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/info":
			writeJSON(w, http.StatusOK, map[string]any{"tower_id": f.id.String(), "version": "fake",
				"extensions": []string{ExtAddAppointments, ExtStreamedUploads}})
		case "/add_appointments":
			var req batchRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				writeJSON(w, http.StatusBadRequest, apiErr(teos.ErrCodeInvalidRequestFormat, err.Error()))
				return
			}
			w.Header().Set("Content-Type", "application/x-ndjson")
			enc := json.NewEncoder(w)
			for i, a := range req.Appointments {
				_ = enc.Encode(map[string]any{"index": i, "locator": a.Appointment.Locator, "start_block": 700,
					"signature":       wtcrypto.SignMessage(teos.AppointmentReceiptBytes(a.Signature, 700), f.key),
					"available_slots": 1, "subscription_expiry": 1000})
			}
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// slowConn sends at most piece bytes every 20 ms.
type slowConn struct {
	net.Conn
	piece int
}

func (c slowConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), c.piece)
		time.Sleep(20 * time.Millisecond)
		w, err := c.Conn.Write(p[:k])
		n += w
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// slowTransport sends piece bytes every 20 ms on each connection.
func slowTransport(piece int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return slowConn{c, piece}, nil
	}
	return tr
}

// The HTTP client's timeout bounds a streamed upload's silence, not its length: a body that
// takes longer to send than the timeout, while it is being sent, is not cut. Before, the
// timer ran from the request's start until the first answer line, so over a slow link every
// try of a big batch was cancelled while its body was still going out, and the upload never
// got anywhere.
func TestStreamedUploadSlowLinkNotCut(t *testing.T) {
	f := newFakeTower(t)
	srv := streamTower(t, f)
	const idle = time.Second
	c := New(srv.URL, f.id, newUserKey(t), WithRetry(0, 0), WithHTTPClient(&http.Client{Transport: slowTransport(2048), Timeout: idle})) // 100 KB/s
	appts := randomAppointments(t, 100, 600)                                                                                             // about 150 KB of JSON: 1.5 s on this link
	idxs := make([]int, len(appts))
	for i := range idxs {
		idxs[i] = i
	}
	got := 0
	start := time.Now()
	err := c.Upload(t.Context(), appts, idxs, func(r UploadResult) {
		if r.Err == nil {
			got++
		}
	})
	if err != nil || got != len(appts) {
		t.Fatalf("upload over a slow link (timeout %v, took %v): %v; %d of %d receipts", idle, time.Since(start), err, got, len(appts))
	}
	t.Logf("%d appointments over a slow link in %v with a %v timeout", len(appts), time.Since(start).Round(time.Millisecond), idle)
}

// A body that trickles (here 20 bytes every 20 ms, 1 KB/s) is still cut by the client's
// bound, not left to run for minutes: the transport takes the body 32 KB at a time, so each
// piece is a silence longer than the timeout. (The 8 KiB/s floor on the whole, for pieces that
// each pass within the timeout, is shown on get_subscription_info: TestSubscriptionTrickleCut.)
func TestStreamedUploadTrickleCut(t *testing.T) {
	f := newFakeTower(t)
	srv := streamTower(t, f)
	c := New(srv.URL, f.id, newUserKey(t), WithRetry(0, 0), WithHTTPClient(&http.Client{Transport: slowTransport(20), Timeout: 300 * time.Millisecond}))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // 150 KB at 1 KB/s would take minutes
	defer cancel()
	appts := randomAppointments(t, 100, 600)
	idxs := make([]int, len(appts))
	for i := range idxs {
		idxs[i] = i
	}
	err := c.Upload(ctx, appts, idxs, func(UploadResult) {})
	if !errors.Is(err, errIdle) || !IsTransient(err) || ctx.Err() != nil {
		t.Fatalf("trickled upload: %v (ctx %v), want cut by the client's bound", err, ctx.Err())
	}
}
