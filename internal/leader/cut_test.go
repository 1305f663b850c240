package leader

import (
	"context"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
)

// cutProxy is a TCP proxy to the database that can be cut off as a lost machine or a stopped
// process is: from then on nothing passes either way, nothing is closed on the server's side
// (until the test ends), and new connections are refused.
type cutProxy struct {
	ln    net.Listener
	dead  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				_ = a.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, a, b)
			p.mu.Unlock()
			wg.Go(func() { p.pump(b, a) })
			wg.Go(func() { p.pump(a, b) })
		}
	})
	return p
}

func (p *cutProxy) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.dead.Load() {
			if err != nil {
				return // cut: the other side is left open, as a lost peer leaves it
			}
			continue
		}
		if err != nil {
			_ = dst.Close()
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *cutProxy) cut() {
	p.dead.Store(true)
	_ = p.ln.Close()
}

// TestCutOffLeaderReleasesTheLock: the leader's machine is lost (or its process stopped): its
// session stays open on the server, silent. The leader steps down by itself, and the server must
// end the silent session so that another instance can lead, rather than when TCP keepalive
// gives up, hours later.
func TestCutOffLeaderReleasesTheLock(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	direct := srv.NewDatabase(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	p := startCutProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := New(Config{URL: u.String(), Every: 50 * time.Millisecond})
	wg.Go(func() { _ = a.Run(ctx) })
	waitState(t, a, true)
	b := New(Config{URL: direct, Every: 50 * time.Millisecond})
	wg.Go(func() { _ = b.Run(ctx) })
	for range 5 { // b tries while a leads
		time.Sleep(60 * time.Millisecond)
		if l, _ := b.Leading(); l {
			t.Fatal("two leaders")
		}
	}
	p.cut()
	waitState(t, a, false)
	waitState(t, b, true)
}
