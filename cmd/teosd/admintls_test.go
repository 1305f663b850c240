package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/tlsgen"
)

// reissue replaces the certificate of the identity in certFile/keyFile (same key) with one
// valid from notBefore to notAfter, signed by the key in signerKeyFile under the certificate
// in signerCertFile.
func reissue(t *testing.T, dir, certFile, keyFile, signerCertFile, signerKeyFile string, isCA bool, notBefore, notAfter time.Time) {
	t.Helper()
	id, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := tls.LoadX509KeyPair(filepath.Join(dir, signerCertFile), filepath.Join(dir, signerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *id.Leaf
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	tmpl.Subject = pkix.Name{CommonName: id.Leaf.Subject.CommonName}
	parent := signer.Leaf
	if isCA {
		parent = &tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, parent, id.Leaf.PublicKey, signer.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAdminTLSSaysWhyCertificatesCannotBeUsed: an expired certificate (made with another tool:
// teosd's and rust-teos's run to 4096) was reported as "not signed by ca.pem", and for an
// expired ca.pem the advice, to remove the server and client files, only brought new ones
// signed by the same expired CA. The warning names the file at fault and what to remove.
func TestAdminTLSSaysWhyCertificatesCannotBeUsed(t *testing.T) {
	past, expired := time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	for _, tc := range []struct {
		name     string
		edit     func(t *testing.T, dir string)
		want     []string
		dontWant string
	}{
		{"expired server certificate", func(t *testing.T, dir string) {
			reissue(t, dir, tlsgen.ServerCertFile, tlsgen.ServerKeyFile, tlsgen.CACertFile, tlsgen.CAKeyFile, false, past, expired)
		}, []string{"server.pem expired", "server-key.pem"}, "client"},
		{"expired CA", func(t *testing.T, dir string) {
			reissue(t, dir, tlsgen.CACertFile, tlsgen.CAKeyFile, tlsgen.CACertFile, tlsgen.CAKeyFile, true, past, expired)
		}, []string{"ca.pem expired", "ca-key.pem"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := tlsgen.Ensure(dir); err != nil {
				t.Fatal(err)
			}
			tc.edit(t, dir)
			var logged bytes.Buffer
			if _, err := adminTLS(dir, slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
				t.Fatal(err)
			}
			out := logged.String()
			if strings.Contains(out, "not signed by ca.pem") {
				t.Fatalf("an expired certificate reported as not signed by the CA:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("warning does not say %q:\n%s", w, out)
				}
			}
			if tc.dontWant != "" && strings.Contains(out, tc.dontWant) {
				t.Fatalf("warning mentions %q, which is fine:\n%s", tc.dontWant, out)
			}
		})
	}
}
