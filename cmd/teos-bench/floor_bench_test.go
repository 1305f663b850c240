//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHTTPServerFloor sizes what a server other than net/http could save the tower per
// request: the same lean client (64 keep-alive connections over loopback) posts an
// add_appointment-sized body to net/http and to a bare HTTP/1.1 loop (one goroutine per
// connection, one buffered read and one write per request, nothing else) that answer the
// same bytes. cpu-µs/req is the whole process (client and server), so the difference between
// the two is the server's; the bare loop's figure is the floor of any server that reads and
// writes through Go's netpoller.
func BenchmarkHTTPServerFloor(b *testing.B) {
	body := bytes.Repeat([]byte{'x'}, 620)   // an add_appointment request's size
	answer := bytes.Repeat([]byte{'y'}, 390) // and its receipt's
	for _, srv := range []struct {
		name  string
		serve func(b *testing.B, lis net.Listener, answer []byte)
	}{
		{"net-http", serveNetHTTP},
		{"bare", serveBare},
	} {
		b.Run(srv.name, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv.serve(b, lis, answer)
			runFloorClients(b, "http://"+lis.Addr().String(), body, len(answer))
		})
	}
}

func serveNetHTTP(b *testing.B, lis net.Listener, answer []byte) {
	ctype := []string{"application/json"}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		w.Header()["Content-Type"] = ctype
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		_, _ = w.Write(answer)
	})}
	go func() { _ = s.Serve(lis) }()
	b.Cleanup(func() { _ = s.Close() })
}

// serveBare answers every request on a connection with the same head and answer; it reads
// only Content-Length from the head, which is all the lean client sends that matters.
func serveBare(b *testing.B, lis net.Listener, answer []byte) {
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: " + time.Now().UTC().Format(http.TimeFormat) +
		"\r\nContent-Length: " + strconv.Itoa(len(answer)) + "\r\n\r\n"
	resp := append([]byte(head), answer...)
	var conns sync.WaitGroup
	var closing atomic.Bool
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 4096)
				for !closing.Load() {
					n, err := readBareRequest(br)
					if err != nil {
						return
					}
					if _, err := br.Discard(n); err != nil {
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			})
		}
	}()
	b.Cleanup(func() {
		closing.Store(true)
		_ = lis.Close()
	})
}

// readBareRequest reads a request's head and returns its Content-Length.
func readBareRequest(br *bufio.Reader) (int, error) {
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, err
			}
		}
	}
	if length < 0 {
		return 0, errors.New("no Content-Length")
	}
	return length, nil
}

func runFloorClients(b *testing.B, url string, body []byte, answerLen int) {
	const clients = 64
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := processCPU()
	for range clients {
		wg.Go(func() {
			conn, err := newLeanConn(url, 10*time.Second)
			if err != nil {
				failed.Store(err)
				return
			}
			defer conn.close()
			for next.Add(1) <= int64(b.N) {
				o := conn.post(context.Background(), "add_appointment", body)
				if o.err != nil || o.status != http.StatusOK || len(o.body) != answerLen {
					failed.Store(errors.New("request failed: status " + strconv.Itoa(o.status)))
					return
				}
			}
		})
	}
	wg.Wait()
	cpu := processCPU() - cpu0
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
