package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The one-address attacker runs in a process of its own (this test binary, re-executed),
// as it would on another host: its 3,000 goroutines, their stacks and its garbage collector
// then do not share a Go runtime with the honest client whose latency is measured.

const attackerEnv = "TEOS_EDGE_ATTACKER" // host:port; set only in the attacker's process

// attackerMain is the attacker process's whole life, called from TestMain: TEOS_EDGE_ATTACKER_N
// connections from 127.0.0.2 that send nothing, each re-opened TEOS_EDGE_ATTACKER_REOPEN after
// the tower closes it. It prints "attempts opened closed" every 100 ms and exits when its stdin
// closes (the parent's end) or the parent dies.
func attackerMain() {
	host := os.Getenv(attackerEnv)
	n, err := strconv.Atoi(os.Getenv("TEOS_EDGE_ATTACKER_N"))
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "attacker: bad TEOS_EDGE_ATTACKER_N")
		os.Exit(2)
	}
	reopen, err := time.ParseDuration(os.Getenv("TEOS_EDGE_ATTACKER_REOPEN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "attacker: bad TEOS_EDGE_ATTACKER_REOPEN")
		os.Exit(2)
	}
	var attempts, opened, closedByTower atomic.Int64
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	for range n {
		go func() {
			buf := make([]byte, 1)
			for {
				attempts.Add(1)
				c, err := d.Dial("tcp", host)
				if err != nil { // the tower's reset can beat the dial's return
					time.Sleep(50 * time.Millisecond)
					continue
				}
				opened.Add(1)
				// Send nothing; wait to be closed (no timer per connection: the
				// attacker's own wake-ups would load the machine).
				_, _ = c.Read(buf)
				c.Close()
				closedByTower.Add(1)
				time.Sleep(reopen)
			}
		}()
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0) // the kernel closes every connection
	}()
	for {
		fmt.Printf("%d %d %d\n", attempts.Load(), opened.Load(), closedByTower.Load())
		time.Sleep(100 * time.Millisecond)
	}
}

// attackerProcess is the parent's handle on a running attacker process.
type attackerProcess struct {
	cmd                             *exec.Cmd
	stdin                           io.Closer
	done                            chan struct{}
	attempts, opened, closedByTower atomic.Int64
	stopOnce                        sync.Once
}

// startAttacker starts the attacker process against host; t.Cleanup stops it (by pid) if the
// test ends first.
func startAttacker(t *testing.T, host string, n int, reopen time.Duration) *attackerProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), attackerEnv+"="+host, "TEOS_EDGE_ATTACKER_N="+strconv.Itoa(n),
		"TEOS_EDGE_ATTACKER_REOPEN="+reopen.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &attackerProcess{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 {
				continue
			}
			for i, v := range []*atomic.Int64{&a.attempts, &a.opened, &a.closedByTower} {
				if x, err := strconv.ParseInt(f[i], 10, 64); err == nil {
					v.Store(x)
				}
			}
		}
	}()
	t.Cleanup(a.stop)
	return a
}

// stop ends the attacker: its stdin closes, and if it has not exited within 5 s it is killed.
func (a *attackerProcess) stop() {
	a.stopOnce.Do(func() {
		a.stdin.Close()
		select {
		case <-a.done:
		case <-time.After(5 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		_ = a.cmd.Wait()
	})
}
