package main

import (
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// handshakeFailure says why the TLS handshake with whatever listens at addr fails, or returns
// nil when it does not (nothing listens, or it succeeds). The tower refusing teos-cli's
// certificates, or teos-cli refusing the tower's, is then told apart from a tower that is down:
// the message rust-teos prints for both ("Is teosd running?") sends the operator looking for
// a tower that is running.
func handshakeFailure(addr string, cfg *tls.Config, wait time.Duration) error {
	raw, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return nil
	}
	defer raw.Close()
	if err := raw.SetDeadline(time.Now().Add(wait)); err != nil {
		return nil
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"} // as gRPC offers it
	conn := tls.Client(raw, cfg)
	if err := conn.Handshake(); err != nil {
		if isTimeout(err) {
			return nil
		}
		if errors.As(err, new(tls.RecordHeaderError)) {
			return notTLSError{err}
		}
		return err
	}
	// With TLS 1.3 the server checks the client's certificate after the client is done: a
	// refusal is the first thing read (a gRPC server that accepts sends its settings instead).
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "remote error" {
			return err
		}
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// notTLSError is a handshake answered by something that does not speak TLS: not the admin RPC.
type notTLSError struct{ error }
