// Package freeport hands out loopback TCP ports for servers that tests start as child
// processes (btcd, lnd, teosd, PostgreSQL, tor).
//
// A port the kernel picks for "127.0.0.1:0" comes from its ephemeral range. Once the test
// closes it to pass it on, and again whenever the server stops for a restart, the kernel may
// give that same port to an outgoing connection as its source port, and the server's next
// bind fails with "address already in use" (seen in CI: an lnd node restarted mid-test). Ports
// below the ephemeral range are never used as source ports, so servers keep theirs across
// restarts. Each port is handed out at most once per process.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// floor is the lowest port handed out: below it sit well-known services.
const floor = 10000

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Get returns a loopback port that nothing listened on when it was checked, outside the
// kernel's ephemeral range where possible.
func Get() (int, error) {
	lo, hi := candidates()
	mu.Lock()
	defer mu.Unlock()
	if hi > lo {
		for range 200 {
			p := lo + rand.IntN(hi-lo)
			if given[p] {
				continue
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue // in use
			}
			l.Close()
			given[p] = true
			return p, nil
		}
	}
	// No room outside the ephemeral range: let the kernel choose.
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("freeport: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given[p] {
			given[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("freeport: no free port")
}

// candidates is the range [lo, hi) to draw from: below the ephemeral range, or above it.
func candidates() (lo, hi int) {
	eLo, eHi := ephemeralRange()
	if eLo-floor >= 2000 {
		return floor, eLo
	}
	if 65535-eHi >= 2000 {
		return eHi + 1, 65536
	}
	return 0, 0
}

// ephemeralRange reads Linux's source-port range; elsewhere, the usual default.
func ephemeralRange() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l <= 0 || h < l {
		return lo, hi
	}
	return l, h
}
