//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHTTPServerFloor sizes what a server other than net/http could save the tower per
// request: the same lean client (64 keep-alive connections over loopback) posts an
// add_appointment-sized body to net/http and to a bare HTTP/1.1 loop (one goroutine per
// connection, one buffered read and one write per request, nothing else) that answer the
// same bytes. The server runs in a child process (this test binary again), so
// server-cpu-µs/req is the server's alone (from /proc, 10 ms ticks) and client-cpu-µs/req the
// client's. The bare loop's figure is the floor of any server that reads and writes through
// Go's netpoller.
func BenchmarkHTTPServerFloor(b *testing.B) {
	body := bytes.Repeat([]byte{'x'}, 620) // an add_appointment request's size
	for _, kind := range []string{"net-http", "bare"} {
		b.Run(kind, func(b *testing.B) {
			url, serverCPU := startFloorServer(b, kind)
			before := serverCPU()
			runFloorClients(b, url, body, floorAnswerLen)
			b.ReportMetric(float64((serverCPU()-before).Microseconds())/float64(b.N), "server-cpu-µs/req")
		})
	}
}

const (
	floorServerEnv = "TEOS_BENCH_FLOOR_SERVER"
	floorAnswerLen = 390 // an add_appointment receipt's size
)

// TestFloorServer is BenchmarkHTTPServerFloor's server when run as its child; otherwise it
// does nothing.
func TestFloorServer(t *testing.T) {
	kind := os.Getenv(floorServerEnv)
	if kind == "" {
		t.Skip("the floor benchmark's child process")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answer := bytes.Repeat([]byte{'y'}, floorAnswerLen)
	if kind == "bare" {
		serveBare(t, lis, answer)
	} else {
		serveNetHTTP(t, lis, answer)
	}
	fmt.Println("listening", lis.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
}

// startFloorServer runs TestFloorServer in a child process and returns its URL and a reader
// of its CPU time so far.
func startFloorServer(b *testing.B, kind string) (string, func() time.Duration) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloorServer$", "-test.v")
	cmd.Env = append(os.Environ(), floorServerEnv+"="+kind)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return "http://" + addr, func() time.Duration { return procCPU(b, cmd.Process.Pid) }
		}
	}
	b.Fatalf("floor server %s did not start: %v", kind, sc.Err())
	return "", nil
}

// procCPU is pid's user+system CPU time from /proc (clock ticks of 10 ms).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which ends at the last ')': utime and stime are the
	// 12th and 13th of them.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func serveNetHTTP(b testing.TB, lis net.Listener, answer []byte) {
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
func serveBare(b testing.TB, lis net.Listener, answer []byte) {
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
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "client-cpu-µs/req")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
