package main

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/api/limits"
	"github.com/teos-go/teos/internal/config"
)

// The onion service's edge (docs/EXTENSIONS.md "Onion clients"). Tor forwards every onion
// connection from 127.0.0.1, so on the public listener all onion clients would share one
// address's caps. They get their own loopback listener instead, served by the same handler:
// its requests are known to come over Tor (clientaddr.Client.Onion), it has no per-address
// cap or parking, and its own global cap, taken from the public API's connection budget.

// splitConns splits the public API's connection budget (api_max_connections, fitted to the
// open files limit) between the public listener and, with tor_support, the onion listener:
// a quarter goes to onion clients, so they cannot take the clearnet clients' places, nor
// the clearnet clients theirs. total <= 0 (no cap) leaves both uncapped.
func splitConns(total int, tor bool) (public, onion int) {
	if !tor || total <= 0 {
		return total, 0
	}
	onion = max(total/4, 1)
	return max(total-onion, 1), onion
}

// listen opens the onion service's target, 127.0.0.1 on a port the kernel picks, and its
// server: handler and to as the public API's, every request marked as come over Tor.
// Nothing when tor_support is off.
func (o *onionService) listen(cfg *config.Config, handler http.Handler, to apiTimeouts) error {
	if o == nil {
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return errors.New("listen onion service target on 127.0.0.1: " + err.Error())
	}
	_, onionMax := splitConns(apiConnBudget(cfg, fdLimit()), true)
	o.lis = limits.NewListener(l, limits.ListenerConfig{Max: onionMax, FirstByte: firstByteTimeout})
	o.srv = newHTTPServer(handler, to)
	o.srv.ConnContext = clientaddr.WithOnion
	o.log.Info("onion service target", "addr", l.Addr().String(), "max_connections", onionMax)
	return nil
}

// serveAPI serves onion clients until shutdownAPI.
func (o *onionService) serveAPI() error {
	if o == nil || o.srv == nil {
		return nil
	}
	if err := o.srv.Serve(o.lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// shutdownAPI stops the onion clients' server as the public one stops.
func (o *onionService) shutdownAPI(ctx context.Context) error {
	if o == nil || o.srv == nil {
		return nil
	}
	return shutdownHTTP(ctx, o.srv, "onion API", o.log)
}
