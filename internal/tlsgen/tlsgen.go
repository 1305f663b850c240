// Package tlsgen creates and loads the mutual-TLS material of the admin RPC (teosd ↔ teos-cli):
// a CA, a server and a client identity in the data dir, as rust-teos does (docs/PROTOCOL.md §13).
package tlsgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/teos-go/teos/internal/durable"
)

// File names inside the data dir; teos-cli needs the client pair and the CA certificate.
const (
	CACertFile     = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server-key.pem"
	ClientCertFile = "client.pem"
	ClientKeyFile  = "client-key.pem"
)

// ServerName is the name the client checks on the server certificate (teos-cli uses it
// whatever address it dials).
const ServerName = "localhost"

// Identity names, as reported by Ensure.
const (
	CA     = "ca"
	Server = "server"
	Client = "client"
)

// Validity mirrors rcgen's defaults: long enough never to matter, and starting early enough
// that a client with a slow clock still accepts the certificates.
var (
	notBefore = time.Date(1975, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(4096, 1, 1, 0, 0, 0, 0, time.UTC)
)

// How long Ensure waits for another process generating the identities in the same dir, and
// how often it looks.
var lockWait = 30 * time.Second // a variable for tests

const lockPoll = 20 * time.Millisecond

// sans are on every certificate, as in rust-teos.
var sans = []string{"teos", "localhost"}

type spec struct {
	name, commonName, certFile, keyFile string
	usage                               x509.ExtKeyUsage // unused for the CA
}

var specs = [...]spec{
	{CA, "teos Root CA", CACertFile, CAKeyFile, 0},
	{Server, "teos grpc Server", ServerCertFile, ServerKeyFile, x509.ExtKeyUsageServerAuth},
	{Client, "teos grpc Client", ClientCertFile, ClientKeyFile, x509.ExtKeyUsageClientAuth},
}

// Result says what Ensure did.
type Result struct {
	// Generated lists the identities created by this call (CA, Server, Client), in that order.
	Generated []string
	// Unchained lists the kept identities whose certificate no longer verifies against ca.pem,
	// typically because the CA alone was regenerated; the operator must remove them.
	Unchained []string
	// Problems says, for each of Unchained in turn, which file is at fault and which files to
	// remove: an expired certificate (possible only with certificates made by another tool) is
	// not one signed by another CA, and an expired ca.pem is not cured by new leaves.
	Problems []string
}

// Ensure makes sure dir holds the three identities. An identity whose certificate or key file
// is missing is generated (both files), except the CA's key while nothing needs signing; the
// others are loaded and reused unchanged. A file that exists but cannot be parsed is an error:
// it is never overwritten. Processes sharing dir (teosd instances on one PostgreSQL may) take
// turns, so that they generate one set between them rather than overwrite each other's files
// with pieces of several.
func Ensure(dir string) (Result, error) {
	unlock, err := lockDir(dir)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	var res Result
	var ca tls.Certificate
	for _, s := range specs {
		var id tls.Certificate
		var generated bool
		var err error
		if s.name == CA && caKeyOffline(dir) {
			id, err = loadCertificate(filepath.Join(dir, CACertFile))
		} else {
			id, generated, err = loadOrGenerate(dir, s, ca)
		}
		if err != nil {
			return Result{}, fmt.Errorf("%s identity: %w", s.name, err)
		}
		if generated {
			res.Generated = append(res.Generated, s.name)
		}
		if s.name == CA {
			ca = id
			continue
		}
		if problem := chainProblem(s, id.Leaf, ca.Leaf); problem != "" {
			res.Unchained = append(res.Unchained, s.name)
			res.Problems = append(res.Problems, problem)
		}
	}
	return res, nil
}

// caKeyOffline reports whether ca.pem is there without ca-key.pem while both leaves are there
// too. The key is then not needed, nothing being left to sign: an operator may keep it
// offline (it mints client certificates that can stop the tower), and a new CA would lock
// out every teos-cli holding the current client certificate.
func caKeyOffline(dir string) bool {
	for _, f := range []string{CACertFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile} {
		if ok, err := exists(filepath.Join(dir, f)); !ok || err != nil {
			return false
		}
	}
	ok, err := exists(filepath.Join(dir, CAKeyFile))
	return !ok && err == nil
}

// loadCertificate loads the first certificate of path, without its key.
func loadCertificate(path string) (tls.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return tls.Certificate{}, err
	}
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load %s: %w", path, err)
		}
		return tls.Certificate{Certificate: [][]byte{block.Bytes}, Leaf: cert}, nil
	}
	return tls.Certificate{}, fmt.Errorf("load %s: no PEM certificate in it", path)
}

func loadOrGenerate(dir string, s spec, ca tls.Certificate) (tls.Certificate, bool, error) {
	certPath, keyPath := filepath.Join(dir, s.certFile), filepath.Join(dir, s.keyFile)
	haveCert, err := exists(certPath)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	haveKey, err := exists(keyPath)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if haveCert && haveKey {
		id, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return tls.Certificate{}, false, fmt.Errorf("load %s and %s: %w", certPath, keyPath, err)
		}
		return id, false, nil
	}
	certPEM, keyPEM, err := generate(s, ca)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	// Key first: a crash between the two writes leaves the certificate missing, and the next
	// start regenerates both. Each file is written whole, then its name flushed.
	if err := durable.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := durable.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, err
	}
	id, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("reload generated pair: %w", err)
	}
	return id, true, nil
}

// generate makes a P-256 key and its certificate: self-signed for the CA, else signed by ca.
func generate(s spec, ca tls.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.commonName},
		DNSNames:              sans,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
	}
	parent, signer := tmpl, crypto.Signer(key)
	if s.name == CA {
		tmpl.IsCA = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{s.usage}
		caKey, ok := ca.PrivateKey.(crypto.Signer)
		if ca.Leaf == nil || !ok {
			return nil, nil, errors.New("no usable CA to sign with")
		}
		parent, signer = ca.Leaf, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// chainProblem is "" if the leaf of s verifies against ca now, else what is wrong and what to
// remove so that teosd generates working files.
func chainProblem(s spec, leaf, ca *x509.Certificate) string {
	if leaf == nil || ca == nil {
		return fmt.Sprintf("%s: unreadable; remove %s and %s", s.name, s.certFile, s.keyFile)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{s.usage}})
	if err == nil {
		return ""
	}
	now := time.Now()
	leafFix := fmt.Sprintf("remove %s and %s", s.certFile, s.keyFile)
	caFix := fmt.Sprintf("remove %s, %s and the server and client files", CACertFile, CAKeyFile)
	switch {
	case now.After(ca.NotAfter):
		return fmt.Sprintf("%s: %s expired on %s; %s", s.name, CACertFile, ca.NotAfter.Format(time.DateOnly), caFix)
	case now.Before(ca.NotBefore):
		return fmt.Sprintf("%s: %s is not valid before %s; %s", s.name, CACertFile, ca.NotBefore.Format(time.RFC3339), caFix)
	case now.After(leaf.NotAfter):
		return fmt.Sprintf("%s: %s expired on %s; %s", s.name, s.certFile, leaf.NotAfter.Format(time.DateOnly), leafFix)
	case now.Before(leaf.NotBefore):
		return fmt.Sprintf("%s: %s is not valid before %s; %s", s.name, s.certFile, leaf.NotBefore.Format(time.RFC3339), leafFix)
	}
	return fmt.Sprintf("%s: %s does not verify against %s (%v); %s", s.name, s.certFile, CACertFile, err, leafFix)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
}

// ServerConfig is teosd's side: it presents server.pem and requires a client certificate
// that chains to ca.pem.
func ServerConfig(dir string) (*tls.Config, error) {
	id, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load server certificate: %w", err)
	}
	pool, err := caPool(dir)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{id},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientConfig is teos-cli's side: it presents client.pem, trusts only ca.pem and expects the
// server to be named ServerName.
func ClientConfig(dir string) (*tls.Config, error) {
	id, err := tls.LoadX509KeyPair(filepath.Join(dir, ClientCertFile), filepath.Join(dir, ClientKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load client certificate: %w", err)
	}
	pool, err := caPool(dir)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{id},
		RootCAs:      pool,
		ServerName:   ServerName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func caPool(dir string) (*x509.CertPool, error) {
	path := filepath.Join(dir, CACertFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("load CA certificate: no PEM certificate in %s", path)
	}
	return pool, nil
}
