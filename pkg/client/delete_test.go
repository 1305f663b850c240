package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
)

// A deletion retried after a try whose answer was cut, and then not found, most likely
// deleted the appointment on the cut try: ErrNoDeletionReceipt. After the tower's own 503
// (nothing done) or on a first try, not found is just not found.
func TestDeleteNotFoundAfterLostAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []string
		lost    bool
	}{
		{"cut then not found", []string{"cut", "404"}, true},
		{"503 then not found", []string{"503", "404"}, false},
		{"not found", []string{"404"}, false},
		{"dial failed then not found", []string{"dial", "404"}, false},
		// A reverse proxy's rate limit or body timeout: the try never reached the tower.
		{"429 then not found", []string{"429", "404"}, false},
		{"408 then not found", []string{"408", "404"}, false},
		{"502 then not found", []string{"502", "404"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTower(t) // for its id only
			var mu sync.Mutex
			answers := tc.answers
			dialing := false
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/info" {
					writeJSON(w, http.StatusOK, map[string]any{"tower_id": f.id.String(), "version": "fake", "extensions": []string{ExtDeleteAppointment}})
					return
				}
				mu.Lock()
				a := answers[0]
				answers = answers[1:]
				mu.Unlock()
				switch a {
				case "cut":
					if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
						c.Close()
					}
				case "503":
					writeJSON(w, http.StatusServiceUnavailable, apiErr(teos.ErrCodeServiceUnavailable, "Service currently unavailable"))
				case "429", "408", "502":
					code := map[string]int{"429": http.StatusTooManyRequests, "408": http.StatusRequestTimeout, "502": http.StatusBadGateway}[a]
					http.Error(w, http.StatusText(code), code)
				default:
					writeJSON(w, http.StatusNotFound, apiErr(teos.ErrCodeAppointmentNotFound, "Appointment not found"))
				}
			}))
			t.Cleanup(srv.Close)
			// "dial": the connection for that try is refused before anything is sent.
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.DisableKeepAlives = true
			dial := tr.DialContext
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				mu.Lock()
				refuse := len(answers) > 0 && answers[0] == "dial" && dialing
				if refuse {
					answers = answers[1:]
				}
				mu.Unlock()
				if refuse {
					return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
				}
				return dial(ctx, network, addr)
			}
			c := New(srv.URL, f.id, newUserKey(t), WithRetry(3, time.Millisecond), WithHTTPClient(&http.Client{Transport: tr}))
			c.supportsBatch(t.Context(), make(chan struct{}, 1)) // the extension probe, before any scripted answer
			if !c.hasExtension(ExtDeleteAppointment) {
				t.Fatal("extension probe failed")
			}
			mu.Lock()
			dialing = true
			mu.Unlock()
			_, err := c.DeleteAppointment(t.Context(), randomAppointment(t, 10).Locator)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code != teos.ErrCodeAppointmentNotFound || errors.Is(err, ErrNoDeletionReceipt) != tc.lost {
				t.Fatalf("DeleteAppointment = %v, want not found (ErrNoDeletionReceipt: %v)", err, tc.lost)
			}
			if len(answers) != 0 {
				t.Fatalf("%d scripted answers unused", len(answers))
			}
		})
	}
}
