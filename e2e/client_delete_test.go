package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/client"
	"github.com/teos-go/teos/pkg/teos"
)

// cuttingProxy forwards to a tower; while cut is set (cut > 0: that many more times, < 0:
// always) it hands each /delete_appointment to the tower and then closes the client's
// connection instead of answering: the deletion is done, its answer lost.
type cuttingProxy struct {
	url string
	cut atomic.Int32
	n   atomic.Int32 // deletions the tower answered behind a cut
}

func newCuttingProxy(t *testing.T, target string) *cuttingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p := &cuttingProxy{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := p.cut.Load()
		if r.URL.Path != "/delete_appointment" || c == 0 {
			rp.ServeHTTP(w, r)
			return
		}
		if c > 0 {
			p.cut.Add(-1)
		}
		body, _ := io.ReadAll(r.Body)
		resp, err := http.Post(target+r.URL.Path, r.Header.Get("Content-Type"), bytes.NewReader(body))
		if err == nil {
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			p.n.Add(1)
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.url = "http://" + lis.Addr().String()
	return p
}

// TestDeleteAnswerLost: a deletion the tower carried out but whose answer was cut. The
// library's retry finds the appointment gone and says there is no receipt
// (ErrNoDeletionReceipt) instead of "not found"; teos-client, killed off by cut answers on
// every try, recognises its own deletion on the next run (the request was recorded before it
// was sent) and reports the appointment deleted without a receipt. Before, both answered
// 404 / 36, as for a locator the user never sent.
func TestDeleteAnswerLost(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start()
	proxy := newCuttingProxy(t, tw.apiURL)
	ctx := t.Context()

	// The library, one call: the first answer is cut, the retry finds nothing.
	cl := client.New(proxy.url, tw.id, userKey(t), client.WithRetry(3, 10*time.Millisecond))
	reg, err := cl.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appt := randomAppointment(t, 100)
	if _, err := cl.AddAppointment(ctx, appt); err != nil {
		t.Fatal(err)
	}
	proxy.cut.Store(1)
	_, err = cl.DeleteAppointment(ctx, appt.Locator)
	var apiErr *client.APIError
	if !errors.Is(err, client.ErrNoDeletionReceipt) || !errors.As(err, &apiErr) || apiErr.Code != teos.ErrCodeAppointmentNotFound {
		t.Fatalf("DeleteAppointment with its answer cut: %v, want ErrNoDeletionReceipt", err)
	}
	if proxy.n.Load() != 1 {
		t.Fatalf("%d deletions behind a cut, want 1", proxy.n.Load())
	}
	if _, err := cl.GetAppointment(ctx, appt.Locator); !errors.As(err, &apiErr) || apiErr.Code != teos.ErrCodeAppointmentNotFound {
		t.Fatalf("GetAppointment after the deletion: %v, want not found", err)
	}
	if info, err := cl.GetSubscriptionInfo(ctx); err != nil || info.AvailableSlots != reg.AvailableSlots {
		t.Fatalf("slots after the deletion: %+v %v, want %d (refunded)", info, err, reg.AvailableSlots)
	}
	// A locator never sent is still plainly not found.
	if _, err := cl.DeleteAppointment(ctx, randomAppointment(t, 100).Locator); errors.Is(err, client.ErrNoDeletionReceipt) ||
		!errors.As(err, &apiErr) || apiErr.Code != teos.ErrCodeAppointmentNotFound {
		t.Fatalf("DeleteAppointment of an unknown locator: %v", err)
	}

	// teos-client: every answer of the first run is cut; the second run is answered.
	bin, err := teosClientBin()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "client")
	cli := func(args ...string) (int, string, string) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"--datadir", dataDir, "--tower", proxy.url}, args...)...)
		btcdtest.DieWithParent(cmd, syscall.SIGKILL)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	if code, _, stderr := cli("--towerid", tw.id.String(), "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	file, appts := penaltyFile(t, 2)
	if code, _, stderr := cli("add_appointment", "--file", file); code != 0 {
		t.Fatalf("add_appointment: %d %s", code, stderr)
	}
	loc := appts[0].Locator.String()
	proxy.cut.Store(-1)
	proxy.n.Store(0)
	if code, stdout, stderr := cli("delete", loc); code == 0 || stdout != "" {
		t.Fatalf("delete with every answer cut: exit %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	if proxy.n.Load() == 0 {
		t.Fatal("no deletion reached the tower")
	}
	proxy.cut.Store(0)
	code, stdout, stderr := cli("delete", loc)
	var out struct {
		Locator string `json:"locator"`
		Deleted bool   `json:"deleted"`
		Receipt *bool  `json:"receipt"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil || out.Locator != loc || !out.Deleted || out.Receipt == nil || *out.Receipt {
		t.Fatalf("delete after the lost answer: exit %d, stdout %s, stderr %s; want deleted without a receipt", code, stdout, stderr)
	}
	// The other appointment is deleted with a receipt, and then is plainly not found.
	other := appts[1].Locator.String()
	if code, stdout, stderr := cli("delete", other); code != 0 || !strings.Contains(stdout, `"deletion_block"`) {
		t.Fatalf("delete: exit %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	if code, _, stderr := cli("delete", other); code != 1 || !strings.Contains(stderr, `"error_code":36`) {
		t.Fatalf("second delete: exit %d, stderr %s; want not found (36)", code, stderr)
	}
	// A locator never sent: not found, and no record left behind.
	unknown := randomAppointment(t, 100).Locator.String()
	if code, _, stderr := cli("delete", unknown); code != 1 || !strings.Contains(stderr, `"error_code":36`) {
		t.Fatalf("delete of an unknown locator: exit %d, stderr %s", code, stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(dataDir, "deletions", "*"+unknown+"*")); len(m) != 0 {
		t.Fatalf("record left for an unknown locator: %v", m)
	}
	tw.stop()
}
