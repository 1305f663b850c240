package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/pkg/teos"
)

// The lean client must report what the net/http one reports: the same requests, refusals and
// receipts checked against the tower's key.
func TestBenchLeanClientAgainstFakeTower(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	fake := &fakeTower{key: key, refuseEvery: 7, paths: map[string]int{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	var out bytes.Buffer
	args := []string{"-url", srv.URL, "-http", "lean", "-users", "3", "-c", "4", "-n", "300", "-mix", "add=1,get=0.2,info=0.1",
		"-towerid", teos.UserIDFromPubKey(key.PubKey()).String(), "-bound", "0", "-json"}
	if err := run(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if rep.Config.HTTP != "lean" {
		t.Errorf("report says the %q client ran", rep.Config.HTTP)
	}
	total := 0
	for _, e := range rep.Endpoints {
		total += e.Requests
	}
	if total != 300 {
		t.Errorf("%d requests reported, want 300 (-n)", total)
	}
	if rep.ReceiptMismatches != 0 || rep.ReceiptsChecked == 0 {
		t.Errorf("receipts checked %d, mismatched %d", rep.ReceiptsChecked, rep.ReceiptMismatches)
	}
	var refused int64
	for k, v := range rep.Errors {
		if !strings.Contains(k, "add_appointment HTTP 400 error_code=35") {
			t.Errorf("unexpected error %q", k)
		}
		refused += v
	}
	if refused == 0 || refused != int64(fake.adds/7) {
		t.Errorf("%d refusals reported, server refused %d", refused, fake.adds/7)
	}
}

// A server that ends every connection after one answer (Connection: close) costs a dial per
// request, never an error.
func TestLeanConnFollowsConnectionClose(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/base/add_appointment" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request line", http.StatusTeapot)
			return
		}
		w.Header().Set("Connection", "close")
		_, _ = w.Write(bytes.ToUpper(body))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	lc, err := newLeanConn(srv.URL+"/base/", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.close()
	for i := range 3 {
		o := lc.post(context.Background(), "add_appointment", []byte("abc"))
		if o.err != nil || o.status != http.StatusOK || string(o.body) != "ABC" {
			t.Fatalf("request %d: %d %q %v", i, o.status, o.body, o.err)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 requests answered with Connection: close, want 3", n)
	}
}

// A keep-alive connection the server dropped while idle is dialled again, and the request
// still gets its answer.
func TestLeanConnRedialsAfterIdleClose(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, r.Body)
	}))
	defer srv.Close()
	lc, err := newLeanConn(srv.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.close()
	if o := lc.post(context.Background(), "x", []byte("one")); o.err != nil || string(o.body) != "one" {
		t.Fatalf("first: %q %v", o.body, o.err)
	}
	srv.CloseClientConnections()
	if o := lc.post(context.Background(), "x", []byte("two")); o.err != nil || string(o.body) != "two" {
		t.Fatalf("after the server closed the idle connection: %q %v", o.body, o.err)
	}
}

func TestLeanConnRefusesHTTPS(t *testing.T) {
	if _, err := newLeanConn("https://127.0.0.1:1", time.Second); err == nil {
		t.Error("an https URL was accepted")
	}
	if _, err := parseFlags([]string{"-http", "curl"}, io.Discard); err == nil {
		t.Error("-http curl was accepted")
	}
}

// A context ending while, or after, a request runs stops it with an error and never touches
// a connection the client already dropped.
func TestLeanConnContextEnds(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	lc, err := newLeanConn(srv.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		o := lc.post(ctx, "x", []byte("slow"))
		if o.err == nil {
			t.Fatalf("a request cut off by its context got %d %q", o.status, o.body)
		}
		cancel()
	}
}
