package tlsgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeRustTeosIdentities writes certificates shaped as rust-teos's tls.rs writes them with
// rcgen: P-256 keys in PKCS#8, no key usage nor extended key usage on any certificate, and
// the leaves signed by a CA certificate rebuilt from ca.pem's parameters and key (rcgen's
// from_ca_cert_pem then self_signed), so the signer is not ca.pem's exact certificate but
// one with the same subject and key.
func writeRustTeosIdentities(t *testing.T, dir string) {
	t.Helper()
	newKey := func(file string) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, filepath.Join(dir, file), "PRIVATE KEY", der)
		return k
	}
	skid := func(k *ecdsa.PrivateKey) []byte {
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(pub)
		return sum[:20]
	}
	tmpl := func(cn string, serial int64) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			DNSNames:     []string{"teos", "localhost"},
			NotBefore:    time.Date(1975, 1, 1, 0, 0, 0, 0, time.UTC),
			NotAfter:     time.Date(4096, 1, 1, 0, 0, 0, 0, time.UTC),
		}
	}
	caKey := newKey(CAKeyFile)
	caTmpl := func(serial int64) *x509.Certificate {
		c := tmpl("teos Root CA", serial)
		c.IsCA, c.BasicConstraintsValid, c.SubjectKeyId = true, true, skid(caKey)
		return c
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl(1), caTmpl(1), &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, CACertFile), "CERTIFICATE", caDER)
	signerDER, err := x509.CreateCertificate(rand.Reader, caTmpl(2), caTmpl(2), &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := x509.ParseCertificate(signerDER)
	if err != nil {
		t.Fatal(err)
	}
	for i, leaf := range []struct{ cn, cert, key string }{
		{"teos grpc Server", ServerCertFile, ServerKeyFile},
		{"teos grpc Client", ClientCertFile, ClientKeyFile},
	} {
		k := newKey(leaf.key)
		c := tmpl(leaf.cn, int64(10+i))
		c.SubjectKeyId = skid(k)
		der, err := x509.CreateCertificate(rand.Reader, c, signer, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, filepath.Join(dir, leaf.cert), "CERTIFICATE", der)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// An operator switching from rust-teos keeps its data dir's certificates, and the teos-cli
// copies made from them elsewhere: teosd must use them as they are.
func TestRustTeosCertificatesKept(t *testing.T) {
	dir := t.TempDir()
	writeRustTeosIdentities(t, dir)
	before := readAll(t, dir)
	res, err := Ensure(dir)
	if err != nil || len(res.Generated) != 0 || len(res.Unchained) != 0 {
		t.Fatalf("Ensure on rust-teos's files = %+v, %v; want them kept and chained", res, err)
	}
	for f, b := range readAll(t, dir) {
		if string(b) != string(before[f]) {
			t.Fatalf("%s rewritten", f)
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
		t.Fatalf("rust-teos's certificates: server %v, client %v", serr, cerr)
	}
}
