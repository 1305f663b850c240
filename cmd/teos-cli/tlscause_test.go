package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/tlsgen"
)

// TestCertificateMismatchIsNamed: when the tower is running but it and teos-cli do not accept
// each other's certificates, teos-cli prints rust-teos's "Is teosd running?" line and then what
// failed, so the operator looks at the certificates rather than for a tower that is running.
// Nothing more is said when nothing listens.
func TestCertificateMismatchIsNamed(t *testing.T) {
	f := newFake(t)
	dir, port := serveFake(t, f)
	other := t.TempDir()
	if _, err := tlsgen.Ensure(other); err != nil {
		t.Fatal(err)
	}
	// files builds a data dir with ca.pem from caFrom and the client identity from clientFrom.
	files := func(caFrom, clientFrom string) string {
		d := t.TempDir()
		copyFile(t, filepath.Join(caFrom, tlsgen.CACertFile), filepath.Join(d, tlsgen.CACertFile))
		copyFile(t, filepath.Join(clientFrom, tlsgen.ClientCertFile), filepath.Join(d, tlsgen.ClientCertFile))
		copyFile(t, filepath.Join(clientFrom, tlsgen.ClientKeyFile), filepath.Join(d, tlsgen.ClientKeyFile))
		return d
	}
	plain := httptest.NewServer(http.NotFoundHandler()) // not TLS: the wrong port
	t.Cleanup(plain.Close)
	plainPort := strings.TrimPrefix(plain.URL, "http://127.0.0.1:")

	for _, tc := range []struct {
		name, dir, port string
		cause           []string // in the second line
	}{
		{"tower's certificate not from our ca.pem", files(other, dir), strconv.Itoa(port),
			[]string{"TLS handshake failed", "certificate signed by unknown authority", "ca.pem"}},
		{"our client certificate not from the tower's CA", files(dir, other), strconv.Itoa(port),
			[]string{"TLS handshake failed", "remote error: tls: unknown certificate authority", "client.pem"}},
		{"not a TLS server", dir, plainPort, []string{"does not speak TLS", "rpc_bind:rpc_port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, command := range []string{"gettowerinfo", "stop"} {
				code, out, errOut := runCLI("--datadir", tc.dir, "--rpcbind", "127.0.0.1", "--rpcport", tc.port, command)
				lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
				if code != 1 || out != "" || len(lines) != 2 || lines[0] != msgNoConnection {
					t.Fatalf("%s: exit %d, stdout %q, stderr %q; want rust-teos's line and the cause", command, code, out, errOut)
				}
				for _, want := range tc.cause {
					if !strings.Contains(lines[1], want) {
						t.Errorf("%s: %q lacks %q", command, lines[1], want)
					}
				}
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		t.Fatal("a refused teos-cli stopped the tower")
	}
}
