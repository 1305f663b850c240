package tlsgen

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/durable/durabletest"
)

var allFiles = []string{CACertFile, CAKeyFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile}

func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	for _, f := range allFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", data)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureGenerates(t *testing.T) {
	dir := t.TempDir()
	res, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Generated, []string{CA, Server, Client}) || len(res.Unchained) != 0 {
		t.Fatalf("result %+v", res)
	}
	files := readAll(t, dir)

	for _, f := range []string{CAKeyFile, ServerKeyFile, ClientKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
		block, _ := pem.Decode(files[f])
		if block == nil || block.Type != "PRIVATE KEY" {
			t.Fatalf("%s is not a PKCS#8 PEM key", f)
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if ec, ok := key.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
			t.Fatalf("%s: %T, want an ECDSA P-256 key", f, key)
		}
	}

	ca := parseCert(t, files[CACertFile])
	server := parseCert(t, files[ServerCertFile])
	client := parseCert(t, files[ClientCertFile])
	for _, tc := range []struct {
		cert *x509.Certificate
		cn   string
		isCA bool
		eku  []x509.ExtKeyUsage
	}{
		{ca, "teos Root CA", true, nil},
		{server, "teos grpc Server", false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{client, "teos grpc Client", false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	} {
		c := tc.cert
		if c.Subject.CommonName != tc.cn || c.IsCA != tc.isCA || !c.BasicConstraintsValid {
			t.Errorf("%s: CN %q, CA %v", tc.cn, c.Subject.CommonName, c.IsCA)
		}
		if !slices.Equal(c.DNSNames, []string{"teos", "localhost"}) {
			t.Errorf("%s: SANs %v", tc.cn, c.DNSNames)
		}
		if !slices.Equal(c.ExtKeyUsage, tc.eku) {
			t.Errorf("%s: extended key usage %v, want %v", tc.cn, c.ExtKeyUsage, tc.eku)
		}
		if c.NotAfter.Before(time.Now().AddDate(100, 0, 0)) || c.NotBefore.After(time.Now().AddDate(-10, 0, 0)) {
			t.Errorf("%s: validity %v - %v is not long", tc.cn, c.NotBefore, c.NotAfter)
		}
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA not self-signed: %v", err)
	}
	if ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA cannot sign certificates")
	}
	for _, c := range []*x509.Certificate{server, client} {
		if err := c.CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s not signed by the CA: %v", c.Subject.CommonName, err)
		}
	}
}

func TestEnsureReusesUnchanged(t *testing.T) {
	dir := t.TempDir()
	if _, err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, dir)
	res, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Generated) != 0 || len(res.Unchained) != 0 {
		t.Fatalf("second Ensure: %+v", res)
	}
	for f, b := range readAll(t, dir) {
		if !bytes.Equal(b, before[f]) {
			t.Errorf("%s changed", f)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != len(allFiles) {
		t.Errorf("%d files in the data dir, want %d (temporary files left?)", len(entries), len(allFiles))
	}
}

func TestEnsureRegeneratesOnlyMissing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		remove    string
		generated []string
		unchained []string
	}{
		{"client key", ClientKeyFile, []string{Client}, nil},
		{"server cert", ServerCertFile, []string{Server}, nil},
		// A new CA is made, but the kept identities chain to the old one: reported.
		{"ca cert", CACertFile, []string{CA}, []string{Server, Client}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Ensure(dir); err != nil {
				t.Fatal(err)
			}
			before := readAll(t, dir)
			if err := os.Remove(filepath.Join(dir, tc.remove)); err != nil {
				t.Fatal(err)
			}
			res, err := Ensure(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Generated, tc.generated) || !slices.Equal(res.Unchained, tc.unchained) {
				t.Fatalf("result %+v, want generated %v unchained %v", res, tc.generated, tc.unchained)
			}
			for i, name := range res.Unchained {
				if i >= len(res.Problems) || !strings.HasPrefix(res.Problems[i], name+": "+name+".pem does not verify against ca.pem") {
					t.Fatalf("problems %q do not say why %s is refused", res.Problems, name)
				}
			}
			after := readAll(t, dir)
			for _, s := range specs {
				regenerated := slices.Contains(tc.generated, s.name)
				for _, f := range []string{s.certFile, s.keyFile} {
					if same := bytes.Equal(before[f], after[f]); same == regenerated {
						t.Errorf("%s: unchanged=%v, regenerated identity=%v", f, same, regenerated)
					}
				}
			}
		})
	}
}

func TestEnsureRefusesCorruptFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ServerKeyFile)
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir); err == nil || !strings.Contains(err.Error(), "server") {
		t.Fatalf("Ensure with a corrupt key: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "garbage" {
		t.Fatal("corrupt file was overwritten")
	}
}

func TestConfigMissingFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := ClientConfig(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ClientConfig on an empty dir: %v", err)
	}
	if _, err := ServerConfig(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ServerConfig on an empty dir: %v", err)
	}
}

// handshake runs a real TLS handshake over TCP and returns the server's error, after the
// client has tried to read the server's first bytes (with TLS 1.3 the server's verdict on the
// client certificate arrives after the client thinks the handshake is done).
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := c.(*tls.Conn).Handshake(); err != nil {
			done <- err
			return
		}
		_, err = c.Write([]byte("ok"))
		done <- err
	}()
	conn, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(conn, client)
	clientErr = tc.Handshake()
	if clientErr == nil {
		_, clientErr = io.ReadFull(tc, make([]byte, 2))
	}
	return <-done, clientErr
}

func TestMutualTLS(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, other} {
		if _, err := Ensure(d); err != nil {
			t.Fatal(err)
		}
	}
	server, err := ServerConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ClientConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if serr, cerr := handshake(t, server, client); serr != nil || cerr != nil {
		t.Fatalf("same CA: server %v, client %v", serr, cerr)
	}

	// A client certificate from another CA, even trusting the right server.
	stranger, err := ClientConfig(other)
	if err != nil {
		t.Fatal(err)
	}
	stranger.RootCAs = client.RootCAs
	serr, cerr := handshake(t, server, stranger)
	var unknown x509.UnknownAuthorityError
	if !errors.As(serr, &unknown) || cerr == nil {
		t.Fatalf("client from another CA: server %v, client %v", serr, cerr)
	}

	// No client certificate at all.
	anonymous := client.Clone()
	anonymous.Certificates = nil
	if serr, cerr := handshake(t, server, anonymous); serr == nil || cerr == nil {
		t.Fatalf("client without certificate: server %v, client %v", serr, cerr)
	}

	// The client refuses a server from another CA.
	otherServer, err := ServerConfig(other)
	if err != nil {
		t.Fatal(err)
	}
	otherServer.ClientCAs = server.ClientCAs
	if _, cerr := handshake(t, otherServer, client); !errors.As(cerr, &unknown) {
		t.Fatalf("server from another CA: client %v", cerr)
	}
}

// TestEnsureFlushesNames: every key and certificate written is flushed, then its name in the
// data dir: after a power loss the tower keeps the identity teos-cli was given.
func TestEnsureFlushesNames(t *testing.T) {
	dir := t.TempDir()
	var err error
	syncs := durabletest.Syncs(t, func() { _, err = Ensure(dir) })
	if err != nil {
		t.Fatal(err)
	}
	if n := countOf(syncs, dir); n != len(allFiles) || syncs[len(syncs)-1] != dir {
		t.Fatalf("flushed %v: want the data dir flushed after each of the %d files", syncs, len(allFiles))
	}
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestEnsureConcurrent: teosd instances sharing a data dir (towers on one PostgreSQL may, as
// with the onion key) start together on a fresh one. Each generating and overwriting the
// others' files left a CA key that is not ca.pem's (no later start could load it) or leaves
// signed by a CA that was replaced (teos-cli refused). Every one of them must end with the
// same consistent set, which a later start loads unchanged.
func TestEnsureConcurrent(t *testing.T) {
	for round := range 10 {
		dir := t.TempDir()
		results := make([]Result, 4)
		errs := make([]error, len(results))
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() { results[i], errs[i] = Ensure(dir) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: instance %d: %v", round, i, err)
			}
			if len(results[i].Unchained) != 0 {
				t.Fatalf("round %d: instance %d: %+v", round, i, results[i])
			}
		}
		res, err := Ensure(dir)
		if err != nil || len(res.Generated) != 0 || len(res.Unchained) != 0 {
			t.Fatalf("round %d: the next start: Ensure = %+v, %v; want the set the instances left, whole", round, res, err)
		}
	}
}

// TestEnsureKeepsCAWithoutItsKey: an operator may keep ca-key.pem offline (whoever has it can
// mint a client certificate that stops the tower). While both leaves are there nothing needs
// signing and ca.pem alone verifies them: teosd replaced the CA, so every teos-cli holding the
// current client certificate was refused until new files were made and copied out again.
func TestEnsureKeepsCAWithoutItsKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, dir)
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	res, err := Ensure(dir)
	if err != nil || len(res.Generated) != 0 || len(res.Unchained) != 0 {
		t.Fatalf("Ensure without ca-key.pem = %+v, %v; want everything kept", res, err)
	}
	for _, f := range allFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		switch {
		case f == CAKeyFile && !errors.Is(err, os.ErrNotExist):
			t.Errorf("ca-key.pem written back (%v)", err)
		case f != CAKeyFile && !bytes.Equal(b, before[f]):
			t.Errorf("%s changed", f)
		}
	}
	if _, err := ServerConfig(dir); err != nil {
		t.Fatal(err)
	}

	// A leaf to sign and no CA key: a new CA, as before (the kept leaf is reported).
	if err := os.Remove(filepath.Join(dir, ClientCertFile)); err != nil {
		t.Fatal(err)
	}
	res, err = Ensure(dir)
	if err != nil || !slices.Equal(res.Generated, []string{CA, Client}) || !slices.Equal(res.Unchained, []string{Server}) {
		t.Fatalf("Ensure without ca-key.pem nor client.pem = %+v, %v; want a new CA and client, server reported", res, err)
	}
}
