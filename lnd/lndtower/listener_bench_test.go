package lndtower

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnwire"

	"github.com/teos-go/teos/internal/api/limits"
)

// BenchmarkHandshake: one client connection and brontide handshake after another, accepted by
// lnd's brontide.NewListener (the baseline) and by the capped listener that replaced it.
func BenchmarkHandshake(b *testing.B) {
	towerKey, err := btcec.NewPrivateKey()
	if err != nil {
		b.Fatal(err)
	}
	clientKey, err := btcec.NewPrivateKey()
	if err != nil {
		b.Fatal(err)
	}
	key := &keychain.PrivKeyECDH{PrivKey: towerKey}
	for _, bc := range []struct {
		name   string
		listen func() (net.Listener, error)
	}{
		{"brontide.NewListener", func() (net.Listener, error) {
			return brontide.NewListener(key, "127.0.0.1:0", brontide.DisabledBanClosure)
		}},
		{"capped", func() (net.Listener, error) {
			tcp, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			capped := limits.NewListener(tcp, limits.ListenerConfig{Max: 1024, MaxPerAddress: 32})
			return newListener(capped, key, 0, slog.New(slog.DiscardHandler), nil), nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := bc.listen()
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			go func() {
				for { // until Close; a failed handshake ends no benchmark client's dial here
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			addr := &lnwire.NetAddress{IdentityKey: towerKey.PubKey(), Address: l.Addr()}
			for b.Loop() {
				c, err := brontide.Dial(&keychain.PrivKeyECDH{PrivKey: clientKey}, addr, 5*time.Second, net.DialTimeout)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
