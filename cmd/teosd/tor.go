package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/tor"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// onionService is the public API's Tor onion service (tor_support); nil when it is off.
type onionService struct {
	key         tor.SecretKey
	controlPort uint16
	port        uint16
	log         *slog.Logger
	lis         net.Listener // the onion clients' own listener, tor's target (onionedge.go)
	srv         *http.Server
}

// loadOnion reads <datadir>/<network>/onion_v3_sk (rust-teos's file and format), creating it
// on first use. A file that is not a key stops teosd: replacing it would change the address
// every onion user has.
func loadOnion(cfg *config.Config, log *slog.Logger) (*onionService, error) {
	if !cfg.TorSupport {
		return nil, nil
	}
	key, created, err := tor.LoadOrCreateKey(cfg.NetworkDir())
	if errors.Is(err, tor.ErrBadKey) {
		return nil, fmt.Errorf("onion key: %w (move the file away to have teosd make a new key and a new onion address)", err)
	}
	if err != nil {
		// A key teosd cannot read may still be the tower's: never advise giving it up.
		return nil, fmt.Errorf("onion key: %w (teosd's user must be able to read it; it makes a new key only where there is no file)", err)
	}
	if created {
		log.Info("onion key generated", "file", filepath.Join(cfg.NetworkDir(), tor.KeyFileName))
	}
	return &onionService{key: key, controlPort: cfg.TorControlPort, port: cfg.OnionHiddenServicePort, log: log}, nil
}

// addresses is the onion entry of get_tower_info, as rust-teos lists it ("<id>.onion").
func (o *onionService) addresses() []grpcapi.Address {
	if o == nil {
		return nil
	}
	return []grpcapi.Address{{Type: teosv2.NetworkAddress_TorV3, Host: o.key.Address(), Port: o.port}}
}

// run publishes the service, forwarding to the onion clients' listener (listen), until ctx
// is done.
func (o *onionService) run(ctx context.Context) {
	if o == nil || o.lis == nil {
		return
	}
	tor.Publish(ctx, tor.ServiceConfig{
		ControlAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(o.controlPort))),
		Key:         o.key,
		VirtualPort: o.port,
		Target:      tor.Target(o.lis.Addr()),
		Logger:      o.log,
	})
}
