package pgtest

import (
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// SilentProxy is a TCP proxy to a server whose connections can go silent, as those of a lost
// machine, a stopped process or a NAT that forgot them do: nothing passes either way and
// nothing is closed on the server's side, so only the server's own timeouts can end them.
type SilentProxy struct {
	ln    net.Listener
	cut   atomic.Bool // every connection silent, also one accepted as Cut ran
	mu    sync.Mutex
	conns []*silentConn
}

type silentConn struct {
	p      *SilentProxy
	silent atomic.Bool
	client net.Conn
	server net.Conn
}

// StartSilentProxy listens on 127.0.0.1 and forwards each connection to target until the test
// ends, when it closes everything.
func StartSilentProxy(t testing.TB, target string) *SilentProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &SilentProxy{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.client.Close()
			_ = c.server.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			c := &silentConn{p: p, client: client, server: server}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			wg.Go(func() { c.pump(server, client) })
			wg.Go(func() { c.pump(client, server) })
		}
	})
	return p
}

// BehindSilentProxy puts a new SilentProxy in front of the database at dbURL (NewDatabase's);
// it returns the URL through the proxy and the proxy.
func BehindSilentProxy(t testing.TB, dbURL string) (string, *SilentProxy) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := StartSilentProxy(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

// Addr is the proxy's address, to put in a connection URL in place of the server's.
func (p *SilentProxy) Addr() string { return p.ln.Addr().String() }

// Silence makes every open connection carry nothing from now on; new ones still go through.
func (p *SilentProxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.silent.Store(true)
	}
}

// Cut silences every open connection and refuses new ones: the machine is gone.
func (p *SilentProxy) Cut() {
	p.cut.Store(true)
	_ = p.ln.Close()
}

// pump copies src to dst until src fails. Once silenced it reads and drops, and a failure of
// src no longer closes dst: a lost peer closes nothing.
func (c *silentConn) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if c.silent.Load() || c.p.cut.Load() {
			if err != nil {
				return
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
