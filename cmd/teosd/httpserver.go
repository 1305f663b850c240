package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/api/limits"
	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/metrics"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// apiTimeouts bound how long one client may hold a public API connection, so a slow or
// stalled client (slowloris) is cut off instead of pinning a connection slot. They sit above
// the hold bound: a connection cut while its request is held is, to the CLN plugin, an
// appointment dropped.
type apiTimeouts struct {
	readHeader, read, write, idle time.Duration
	// hold is the longest a request is held during a transient fault (api_hold_timeout).
	hold time.Duration
	// delay is the longest the rate limit delays a request; the hold comes after it.
	delay time.Duration
	// blocks is the longest a request waits for blocks being processed (blockFirstBound).
	blocks time.Duration
	// uploadRate (bytes/s) is the slowest link a body larger than read allows for may
	// arrive over, up to maxBody bytes; see slowBodies.
	uploadRate, maxBody int64
}

var defaultAPITimeouts = apiTimeouts{
	readHeader: 10 * time.Second,
	read:       30 * time.Second, // bodies are at most 2 KiB (docs/PROTOCOL.md body limits)
	write:      30 * time.Second, // to answer once the request is served or refused
	idle:       2 * time.Minute,
	// A batch upload (up to 2.2 MB) over a poor Tor circuit: at 8 KiB/s it gets up to ~270 s.
	uploadRate: 8 << 10,
	maxBody:    httpapi.MaxBodyBytes,
}

// apiTimeoutsFor is defaultAPITimeouts for a hold bound, and the rate limit's delay that
// goes with it (counted whether or not the rate limit is on).
func apiTimeoutsFor(hold time.Duration) apiTimeouts {
	to := defaultAPITimeouts
	to.hold = hold
	to.delay = rateMaxDelay(hold)
	// An add waits at the gate in the handler, then twice per run of the core call, which a
	// held request runs twice (first try and the retry after the fault).
	to.blocks = 5 * blockFirstBound
	return to
}

// rateMaxDelay is the rate limit's longest delay for a hold bound: the bound itself, so a
// client waits no longer for its turn than for a fault; with no hold, the limit's default.
func rateMaxDelay(hold time.Duration) time.Duration {
	if hold <= 0 {
		return limits.DefaultMaxDelay
	}
	return hold
}

// newHTTPServer is the public API's server with its timeouts. The body must arrive within
// read; the answer may then take delay+hold+blocks+write: a request the rate limit delayed can
// still be held by a fault, and then wait for blocks. (net/http lifts the read deadline once the body is read, so a
// held request's context is not cancelled by it.)
func newHTTPServer(handler http.Handler, to apiTimeouts) *http.Server {
	return &http.Server{
		Handler:           slowBodies(handler, to),
		ReadHeaderTimeout: to.readHeader,
		ReadTimeout:       to.read,
		WriteTimeout:      to.read + to.delay + to.hold + to.blocks + to.write,
		IdleTimeout:       to.idle,
		// net/http answers "OPTIONS *" 200 itself; rust-teos's warp answers it 405 like any
		// other method no route takes, and so does the handler.
		DisableGeneralOptionsHandler: true,
	}
}

// slowBodies gives a request whose declared body cannot arrive within the read timeout at
// uploadRate the time it needs at that rate, and moves its write deadline by as much. The read
// timeout is sized for the 2 KiB bodies of the teos API; without this a batch upload over a
// slow link (Tor) was cut, answered 400, on every try of the same batch. Declared lengths past
// maxBody (refused with 413 unread) get nothing extra, so the extension per connection is
// bounded (and a reconnect renews the plain timeout anyway).
func slowBodies(h http.Handler, to apiTimeouts) http.Handler {
	if to.uploadRate <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := r.ContentLength; n > 0 && n <= to.maxBody {
			if need := time.Duration(n) * time.Second / time.Duration(to.uploadRate); need > to.read {
				rc := http.NewResponseController(w)
				now := time.Now()
				// Errors mean the connection cannot take deadlines (none in net/http's): the
				// plain timeouts then stand.
				_ = rc.SetReadDeadline(now.Add(need))
				_ = rc.SetWriteDeadline(now.Add(need + to.delay + to.hold + to.blocks + to.write))
			}
		}
		h.ServeHTTP(w, r)
	})
}

// blocksFirstHandler makes a POST request (every one that costs a signature recovery and a
// store call) wait while a block is processed, before its body is decoded and sent over the
// internal gRPC hop, so a block does not compete with that work either (internal/blockfirst).
func blocksFirstHandler(h http.Handler, blocks *blockfirst.Gate) http.Handler {
	if blocks == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			blocks.Wait()
		}
		h.ServeHTTP(w, r)
	})
}

// The public edge's fixed settings.
const (
	// firstByteTimeout closes connections that send nothing; slower headers get the
	// header timeout instead.
	firstByteTimeout = 5 * time.Second
	// fdReserve is kept free of API connections for the database, bitcoind and gRPC.
	fdReserve = 256
)

// publicEdge builds the public API's handler (routes, trusted proxies, rate limit,
// metrics) and wraps its listener with the connection caps.
func publicEdge(cfg *config.Config, log *slog.Logger, conn grpc.ClientConnInterface, held grpcapi.Hold, met *metrics.Metrics,
	lis net.Listener, draining context.Context, regs *httpapi.RegistrationLimit) (http.Handler, net.Listener, error) {
	proxies, err := clientaddr.ParseProxies(cfg.APITrustedProxies.List())
	if err != nil {
		return nil, nil, err
	}
	hcfg := httpapi.Config{
		Client:  edgeClient(conn, held, met, log), // addbatch.go
		Ext:     teosv2.NewPublicTowerExtensionsClient(conn),
		Logger:  log,
		Proxies: proxies,
	}
	if !proxies.Empty() {
		if reqs := limits.NewRequests(int(cfg.APIMaxConnectionsPerAddress)); reqs != nil {
			hcfg.InFlight = reqs
		}
	}
	if rate := limits.NewRate(limits.RateConfig{Rate: cfg.APIRateLimit, Burst: int(cfg.APIRateBurst),
		// newHTTPServer's write timeout covers this delay and then the hold bound.
		MaxDelay: rateMaxDelay(cfg.HoldTimeout())}); rate != nil {
		hcfg.Gate = drainGate{inner: rate, draining: draining}
	}
	if held.Gate != nil {
		hcfg.Stopping = held.Gate.Closed // closed first at shutdown (main.go)
		hcfg.HoldBound = held.Gate.Bound()
	}
	if cfg.Registration == config.RegistrationOpen { // the allowlist decides in allowlist mode
		hcfg.Registrations = regs // registration_rate's, shared with the front ends (regbudget.go)
	}
	if met != nil {
		hcfg.Observer = httpapi.ObserverFunc(func(e httpapi.Exchange) {
			met.ObserveHTTP(metrics.HTTPRequest{Endpoint: e.Endpoint, Status: e.Status, ErrorCode: e.ErrorCode, Held: e.Held, Duration: e.Duration})
		})
	}
	maxConns := apiConnBudget(cfg, fdLimit())
	if int(cfg.APIMaxConnections) != maxConns {
		log.Warn("api_max_connections lowered to fit the open files limit", "configured", cfg.APIMaxConnections, "used", maxConns, "nofile", fdLimit())
	}
	// The parked connections fit beside both listeners' served ones (the onion listener takes
	// its share of maxConns), so the budget before the split, and the lnd port's.
	parked, parkedPerAddress := parkedBudget(cfg, maxConns+lndConnBudget(cfg, fdLimit()), fdLimit(), log)
	maxConns, _ = splitConns(maxConns, cfg.TorSupport) // onionedge.go
	apiLis := limits.NewListener(lis, limits.ListenerConfig{
		Max:                 maxConns,
		MaxPerAddress:       int(cfg.APIMaxConnectionsPerAddress),
		Exempt:              proxies.Trusted,
		FirstByte:           firstByteTimeout,
		MaxParked:           parked,
		MaxParkedPerAddress: parkedPerAddress,
		ParkTimeout:         parkTimeout,
	})
	if met != nil {
		met.RegisterConnections(func() metrics.Connections {
			s := apiLis.Stats()
			return metrics.Connections{Accepted: s.Accepted, Reset: s.Reset, Parked: s.Parked, Promoted: s.Promoted,
				Expired: s.Expired, Serving: s.Serving, ParkedNow: s.ParkedNow, Full: s.Full}
		})
	}
	return httpapi.NewHandler(hcfg), apiLis, nil
}

// drainGate lets the requests waiting their turn at the rate limit through at once when
// draining ends (teosd shuts down): their turn may come later than the shutdown's bound, which
// would cut them off unanswered, and a refusal would make the CLN plugin drop an appointment
// the tower can still take. A nil draining never ends.
type drainGate struct {
	inner    httpapi.Gate
	draining context.Context
}

func (g drainGate) Admit(ctx context.Context, a httpapi.Admission) (time.Duration, error) {
	if g.draining == nil {
		return g.inner.Admit(ctx, a)
	}
	if g.draining.Err() != nil {
		return 0, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(g.draining, cancel)
	defer stop()
	waited, err := g.inner.Admit(wctx, a)
	if err != nil && ctx.Err() == nil && g.draining.Err() != nil {
		return waited, nil
	}
	return waited, err
}

// shutdownPublic stops the public API's servers, clearnet and onion, until ctx's deadline,
// together: both listeners close as the stop begins and each server has the whole bound for
// its requests in flight. One after the other, a slow clearnet request kept the onion listener
// accepting until the bound, then cut what it had accepted meanwhile: the CLN plugin keeps an
// appointment whose connection is refused pending, and drops one cut after it was sent.
func shutdownPublic(ctx context.Context, srv *http.Server, onion *onionService, log *slog.Logger) error {
	var onionErr error
	var wg sync.WaitGroup
	wg.Go(func() { onionErr = onion.shutdownAPI(ctx) })
	err := shutdownHTTP(ctx, srv, "HTTP API", log)
	wg.Wait()
	return errors.Join(err, onionErr)
}

// shutdownHTTP stops srv gracefully until ctx's deadline, then closes the connections still
// open (a client still sending its request, or one still reading its answer): a slow client
// must not turn a requested stop into a failure. An answer not sent by then was not an
// acknowledgement, and what was committed for it stays committed.
func shutdownHTTP(ctx context.Context, srv *http.Server, what string, log *slog.Logger) error {
	err := srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn(what + ": connections still open at the shutdown bound are closed")
		_ = srv.Close()
		return nil
	}
	return err
}

// apiConnBudget is api_max_connections, lowered to fit the open files limit nofile (<= 0:
// unknown) with fdReserve to spare, and the lnd port's connections beside it (fdbudget.go).
func apiConnBudget(cfg *config.Config, nofile int) int {
	api, _ := connBudgets(cfg, nofile)
	return api
}

// parkTimeout is how long a connection past its address's cap waits parked for a place
// before it is reset: long enough for a client behind a busy NAT, and a client re-opening
// what the server closes re-opens each parked connection only this often.
const parkTimeout = 30 * time.Second

// parkedBudget is api_max_parked_connections, lowered so that the parked and the served
// connections (maxConns) fit the open files limit with fdReserve to spare, and the share one
// address may park, lowered in proportion so that one address still cannot take it all.
func parkedBudget(cfg *config.Config, maxConns, nofile int, log *slog.Logger) (parked, perAddress int) {
	parked, perAddress = int(cfg.APIMaxParkedConnections), int(cfg.APIMaxParkedConnectionsPerAddress)
	if nofile > 0 && parked > nofile-fdReserve-maxConns {
		fit := max(nofile-fdReserve-maxConns, 0)
		if parked > 0 && perAddress > 0 {
			perAddress = max(int(int64(perAddress)*int64(fit)/int64(parked)), min(fit, 1))
		}
		log.Warn("api_max_parked_connections lowered to fit the open files limit", "configured", parked, "used", fit,
			"per_address", perAddress, "nofile", nofile)
		parked = fit
	}
	return parked, perAddress
}

// watchIdle lets the public API's listener see which connections are idle between
// requests, to close one when a connection of its address waits parked.
func watchIdle(srv *http.Server, lis net.Listener) {
	if l, ok := lis.(*limits.Listener); ok {
		srv.ConnState = l.ConnState
	}
}
