package client

import (
	"context"
	"encoding/json"
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

// slowConn sends at most 2 KiB every 20 ms: about 100 KB/s, a slow Tor circuit.
type slowConn struct{ net.Conn }

func (c slowConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 2048)
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

// The HTTP client's timeout bounds a streamed upload's silence, not its length: a body that
// takes longer to send than the timeout, while it is being sent, is not cut. Before, the
// timer ran from the request's start until the first answer line, so over a slow link every
// try of a big batch was cancelled while its body was still going out, and the upload never
// got anywhere.
func TestStreamedUploadSlowLinkNotCut(t *testing.T) {
	f := newFakeTower(t)
	srv := streamTower(t, f)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return slowConn{c}, nil
	}
	const idle = time.Second
	c := New(srv.URL, f.id, newUserKey(t), WithRetry(0, 0), WithHTTPClient(&http.Client{Transport: tr, Timeout: idle}))
	appts := randomAppointments(t, 100, 600) // about 150 KB of JSON: 1.5 s on this link
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
