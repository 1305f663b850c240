// Package socks5test is a minimal SOCKS5 proxy on loopback for tests of the client's proxy
// path (RFC 1928, CONNECT, no authentication). It records what each client asked for, so a
// test can check names reach the proxy unresolved, and maps names to loopback addresses the
// way Tor maps an onion address to its service.
package socks5test

import (
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Request is one CONNECT a client sent.
type Request struct {
	AddrType byte   // 1 IPv4, 3 domain name, 4 IPv6
	Host     string // the name or IP as sent
	Port     int
}

// Reply codes (RFC 1928 §6).
const (
	ReplySucceeded       = 0x00
	ReplyHostUnreachable = 0x04
)

// Server is a running proxy.
type Server struct {
	Addr string

	l       net.Listener
	route   func(host string, port int) (target string, reply byte)
	mu      sync.Mutex
	reqs    []Request
	conns   sync.WaitGroup
	closing chan struct{}
}

// Start listens on 127.0.0.1. route says where a request goes, or which failure code to
// answer (target "" with a non-zero reply).
func Start(t testing.TB, route func(host string, port int) (target string, reply byte)) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: l.Addr().String(), l: l, route: route, closing: make(chan struct{})}
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

// Close stops the proxy and waits for its connections.
func (s *Server) Close() {
	select {
	case <-s.closing:
		return
	default:
	}
	close(s.closing)
	s.l.Close()
	s.conns.Wait()
}

// Requests returns the CONNECTs received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

func (s *Server) accept() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.serve(c)
		}()
	}
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	go func() { <-s.closing; c.Close() }()
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[0] != 5 {
		return
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return
	}
	if _, err := c.Write([]byte{5, 0}); err != nil { // no authentication
		return
	}
	var req [4]byte
	if _, err := io.ReadFull(c, req[:]); err != nil || req[0] != 5 || req[1] != 1 {
		return
	}
	var host string
	switch req[3] {
	case 1, 4:
		ip := make([]byte, 4)
		if req[3] == 4 {
			ip = make([]byte, 16)
		}
		if _, err := io.ReadFull(c, ip); err != nil {
			return
		}
		host = net.IP(ip).String()
	case 3:
		var n [1]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(c, name); err != nil {
			return
		}
		host = string(name)
	default:
		return
	}
	var p [2]byte
	if _, err := io.ReadFull(c, p[:]); err != nil {
		return
	}
	port := int(binary.BigEndian.Uint16(p[:]))
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{AddrType: req[3], Host: host, Port: port})
	s.mu.Unlock()

	target, code := s.route(host, port)
	var up net.Conn
	if target != "" {
		var err error
		if up, err = net.Dial("tcp", target); err != nil {
			code = ReplyHostUnreachable
		}
	} else if code == ReplySucceeded {
		code = ReplyHostUnreachable
	}
	reply := []byte{5, code, 0, 1, 127, 0, 0, 1, 0, 0}
	if _, err := c.Write(reply); err != nil || code != ReplySucceeded {
		if up != nil {
			up.Close()
		}
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// Map routes one host:port to target and refuses everything else (host unreachable).
func Map(host string, port int, target string) func(string, int) (string, byte) {
	return func(h string, p int) (string, byte) {
		if h == host && p == port {
			return target, ReplySucceeded
		}
		return "", ReplyHostUnreachable
	}
}

// HostPort is "host:port" for a Request.
func (r Request) HostPort() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }
