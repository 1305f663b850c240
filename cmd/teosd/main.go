// Command teosd is The Eye of Satoshi watchtower daemon, wire-compatible with rust-teos v0.2.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/api/msglimit"
	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/chain"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/frontend"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/metrics"
	"github.com/teos-go/teos/internal/responder"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/internal/tlsgen"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// minChainHeight is the least chain height teosd starts on (rust-teos: IRREVOCABLY_RESOLVED).
const minChainHeight = teos.IrrevocablyResolved

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	onSignal := context.AfterFunc(ctx, func() {
		// The signals' default action is back: a second one ends teosd at once, which loses
		// nothing acknowledged (every answer follows its commit) and leaves nothing half-written.
		stop()
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Info("stopping; a second SIGTERM or Ctrl-C ends teosd at once")
	})
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	// Unhooked before stop cancels ctx: teosd ending by itself (a refused start) must not
	// log "stopping" after its reason, as if it had been signalled.
	onSignal()
	stop()
	os.Exit(code)
}

// run starts the tower and blocks until ctx is done; it returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Help and version on stdout with exit 0, a bad command line on stderr with exit 1: clap 2's
	// way, which rust-teos's teosd has.
	cfg, warnings, err := config.Load(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, config.ErrVersion) {
		printVersion(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "teosd:", err)
		if errors.Is(err, config.ErrCommandLine) {
			fmt.Fprintln(stderr, "Run teosd --help for the flags.")
		}
		return 1
	}
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	grpclog.SetLoggerV2(newGRPCLogger(stderr, cfg.DepsDebug))
	tuneGC(log) // gctune.go
	cfg.LogFile(log)
	for _, w := range warnings {
		log.Warn(w)
	}
	if err := cfg.Validate(); err != nil {
		log.Error("invalid configuration: " + err.Error())
		return 1
	}
	if err := start(ctx, &cfg, log, stdout); err != nil {
		if ctx.Err() != nil && !errors.As(err, new(servingError)) {
			// SIGTERM before the tower was up (the calls under way fail with it): a requested
			// stop, not a fault to blame on bitcoind or the import.
			log.Info("stopped before start-up completed", "interrupted", err.Error())
			return 0
		}
		log.Error(err.Error())
		return 1
	}
	return 0
}

func start(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	if attrs := cfg.NonDefault(); len(attrs) > 0 {
		log.LogAttrs(ctx, slog.LevelInfo, "non-default options", attrs...)
	}
	netDir, err := lockNetworkDir(cfg, log) // dirlock.go: created and locked before an import
	if err != nil {
		return err
	}
	defer netDir.unlock() // last: after the store is closed
	warnOpenSecrets(cfg, log)

	if err := importRustTeos(ctx, cfg, log); err != nil { // before anything else is written
		netDir.removeCreated()
		return err
	}
	onion, err := loadOnion(cfg, log) // nil unless tor_support
	if err != nil {
		return err
	}
	rpcTLS, err := adminTLS(cfg.DataDir, log)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer func() {
		// Last, after every server and the chain monitor returned: nothing writes any more.
		if err := db.Close(); err != nil {
			log.Error("close database: " + err.Error())
		}
	}()

	key, err := towerKey(db, cfg.OverwriteKey)
	if err != nil {
		return err
	}
	towerID := teos.UserIDFromPubKey(key.PubKey())
	fmt.Fprintf(stdout, "tower_id: %s\n", towerID)
	log.Info("tower key loaded", "tower_id", towerID)

	var met *metrics.Metrics // nil unless metrics_bind is set
	held := newHold(cfg, log, &met)
	pollNow := make(chan struct{}, 1) // the chain monitor polls at once when signalled
	btc, err := connectBitcoind(ctx, cfg, log, onBitcoindReachability(held, pollNow))
	if err != nil {
		return err
	}
	defer btc.Close()
	warnIfSyncing(ctx, btc, log) // ibd.go
	if pg, ok := db.(*pgstore.Store); ok {
		return startShared(ctx, cfg, log, pg, key, btc, rpcTLS, held, pollNow, onion, &met)
	}
	bolt := db.(*store.Store) // openStore gives one of the two engines

	hash, height, err := startTip(ctx, cfg, db, btc, log)
	if err != nil {
		return err
	}

	gk := gatekeeper.New(gatekeeper.Config{
		Store:                db,
		SubscriptionSlots:    cfg.SubscriptionSlots,
		SubscriptionDuration: cfg.SubscriptionDuration,
		ExpiryDelta:          cfg.ExpiryDelta,
		Admission:            admission(cfg, bolt), // registration.go
		Logger:               log,
	}, height)
	resp := responder.New(responder.Config{Store: db, Carrier: carrier.New(btc, log), Logger: log}, height)
	// Requests step aside while the chain monitor processes a block (issue 13, blocks first).
	blocksFirst := blockfirst.New(blockFirstBound)
	w := watcher.New(watcher.Config{Store: db, Gatekeeper: gk, Responder: resp, TowerKey: key, Logger: log, Wake: pollNow,
		BlocksFirst: blocksFirst})
	regs := registrationBudget(cfg) // regbudget.go: the public API's and the front ends'
	fes, err := openFrontEnds(ctx, cfg, bolt, key, btc, height, regs, blocksFirst, log)
	if err != nil {
		return err
	}
	chainCfg := chain.Config{
		Source: btc,
		Store:  db,
		// rust-teos's order: users first, then breaches, then trackers; then other front ends.
		Listeners:   append([]chain.Listener{gk, w, resp}, frontEndListeners(fes)...),
		Logger:      log,
		IsTransient: bitcoind.IsUnreachable,
		// Appointments stored after their dispute was mined are handed over on the chain goroutine.
		AfterPoll: w.HandOverQueued,
		Wake:      w.HandOversQueued(),
		Busy:      blocksFirst,
	}
	if cfg.MetricsBind != "" {
		// Only Poll calls the hook, and met is set before the first Poll below.
		chainCfg.OnBlock = func(_ uint32, took time.Duration) { met.ObserveBlock(took) }
	}
	mon, err := chain.New(ctx, chainCfg, hash, height)
	if err != nil {
		return fmt.Errorf("load recent blocks: %w", err)
	}
	if cfg.MetricsBind != "" {
		met = metrics.New(metrics.Config{Counts: db.Counts, Height: mon.Height, Reachable: btc.Reachable,
			Held: held.Gate.Held, AuthFailures: btc.AuthFailures, Endpoints: httpapi.Endpoints(), Logger: log})
		if err := registerFrontEndMetrics(met, fes); err != nil {
			return err
		}
	}
	if err := seed(ctx, btc, mon, w, resp); err != nil {
		return err
	}
	if err := seedFrontEnds(ctx, btc, mon, fes); err != nil {
		return err
	}
	// Catch up before opening any port, so receipts carry the real height and breaches mined
	// while the tower was down are answered first.
	if err := catchUp(ctx, mon, cfg.PollEvery(), log); err != nil {
		return fmt.Errorf("catch up with bitcoind: %w", err)
	}
	log.Info("bootstrap completed", "height", mon.Height())

	return serve(ctx, cfg, log, w, mon, db, towerID, rpcTLS, met, held, blocksFirst, onion, fes, regs)
}

// catchUp polls until the tower has caught up with bitcoind. While bitcoind's best block is
// below the blocks the tower remembers (an operator's invalidateblock deeper than them, until
// the new branch is long enough) it waits, ports closed, as the error says, rather than exit:
// teosd then started only once bitcoind was back up. Any other error ends it, as does a
// reindexing bitcoind that cannot serve those blocks yet (start-up loads them first).
func catchUp(ctx context.Context, mon *chain.Monitor, every time.Duration, log *slog.Logger) error {
	var warned time.Time
	for {
		err := mon.Poll(ctx)
		if !errors.Is(err, chain.ErrBehind) || ctx.Err() != nil {
			return err
		}
		if time.Since(warned) >= time.Minute {
			log.Warn("waiting for bitcoind before opening the ports", "err", err)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// adminTLS makes sure the admin RPC's certificates exist in the data dir (docs/PROTOCOL.md §13) and
// returns the server side of its mutual TLS.
func adminTLS(dataDir string, log *slog.Logger) (*tls.Config, error) {
	res, err := tlsgen.Ensure(dataDir)
	if err != nil {
		return nil, fmt.Errorf("admin RPC certificates: %w", err)
	}
	if len(res.Generated) > 0 {
		log.Info("admin RPC certificates generated", "identities", res.Generated, "dir", dataDir)
	}
	if len(res.Unchained) > 0 {
		log.Warn("admin RPC certificates teos-cli cannot use; remove the files named and restart teosd to have new ones generated",
			"identities", res.Unchained, "problems", res.Problems, "dir", dataDir)
	}
	serverTLS, err := tlsgen.ServerConfig(dataDir)
	if err != nil {
		return nil, fmt.Errorf("admin RPC certificates: %w", err)
	}
	return serverTLS, nil
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, w *watcher.Watcher, mon chainRunner,
	db store.Engine, towerID teos.UserID, rpcTLS *tls.Config, met *metrics.Metrics, held grpcapi.Hold, blocks *blockfirst.Gate,
	onion *onionService, fes []*frontend.Instance, regs *httpapi.RegistrationLimit) error {
	// The admin stop RPC cancels this context, like SIGTERM cancels the parent.
	ctx, shutdown := context.WithCancel(ctx)
	defer shutdown()

	// Until the servers take them over, the listeners are closed on any early return.
	var opened []net.Listener
	serving := false
	defer func() {
		if !serving {
			for _, l := range opened {
				l.Close()
			}
		}
	}()
	listen := func(what, host string, port uint16) (net.Listener, error) {
		addr := host
		if port != 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(int(port)))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s on %s: %w", what, addr, err)
		}
		opened = append(opened, l)
		return l, nil
	}
	grpcLis, err := listen("internal API", cfg.InternalAPIBind, cfg.InternalAPIPort)
	if err != nil {
		return err
	}
	rpcLis, err := listen("admin RPC", cfg.RPCBind, cfg.RPCPort)
	if err != nil {
		return err
	}
	httpLis, err := listen("HTTP API", cfg.APIBind, cfg.APIPort)
	if err != nil {
		return err
	}
	var metricsLis net.Listener
	if met != nil {
		if metricsLis, err = listen("metrics (metrics_bind)", cfg.MetricsBind, 0); err != nil {
			return err
		}
	}
	logRequests := grpc.ChainUnaryInterceptor(grpcapi.LogRequests(log))
	answerLimit := msglimit.ServerOptions(log) // answers up to msglimit.MaxMessageSize; over it, a clear error
	grpcSrv := grpc.NewServer(append([]grpc.ServerOption{logRequests}, answerLimit...)...)
	public := grpcapi.NewPublic(w, held.Bitcoind.IsUp, log)
	public.SetHold(held)
	teosv2.RegisterPublicTowerServicesServer(grpcSrv, public)
	teosv2.RegisterPublicTowerExtensionsServer(grpcSrv, grpcapi.NewExtensions(public))
	rpcSrv := grpc.NewServer(append([]grpc.ServerOption{logRequests, grpc.Creds(credentials.NewTLS(rpcTLS))}, answerLimit...)...)
	teosv2.RegisterPrivateTowerServicesServer(rpcSrv, grpcapi.NewPrivate(grpcapi.PrivateConfig{
		Store:     db,
		TowerID:   towerID,
		Reachable: held.Bitcoind.IsUp,
		Addresses: append([]grpcapi.Address{{Type: teosv2.NetworkAddress_IpV4, Host: cfg.APIBind, Port: cfg.APIPort}}, onion.addresses()...),
		Shutdown:  shutdown,
		Logger:    log,

		// teos-go's fields (towerinfo.go).
		Leadership: leadershipOf(mon),
		FrontEnds:  frontEndsInfo(fes),
	}))
	teosv2.RegisterPrivateTowerExtensionsServer(rpcSrv, grpcapi.NewPrivateExtensions(db, log)) // both engines keep the allowlist

	hopLis, hopTarget, hopOpts := internalHop(grpcLis) // internalhop.go
	if hopLis != nil {
		opened = append(opened, hopLis)
	}
	conn, err := grpc.NewClient(hopTarget, append(hopOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return fmt.Errorf("dial internal API: %w", err)
	}
	defer conn.Close()
	// Ends as shutdown begins: requests delayed by the rate limit are then served at once.
	draining, drain := context.WithCancel(context.Background())
	defer drain()
	api, apiLis, err := publicEdge(cfg, log, conn, held, met, httpLis, draining, regs)
	if err != nil {
		return err
	}
	httpSrv := newHTTPServer(blocksFirstHandler(api, blocks), apiTimeoutsFor(held.Gate.Bound()))
	watchIdle(httpSrv, apiLis)
	if err := onion.listen(cfg, httpSrv.Handler, apiTimeoutsFor(held.Gate.Bound())); err != nil { // onionedge.go
		return err
	}
	registerEdgeMetrics(met, blocks, onion) // edgemetrics.go

	serving = true
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mon.Run(ctx, cfg.PollEvery()) })
	if s, ok := db.(*store.Store); ok {
		g.Go(func() error { return stopWhenUnsynced(ctx, s.Unsynced(), s.WritesRefused) })
	}
	g.Go(func() error { onion.run(ctx); return nil })
	g.Go(onion.serveAPI)
	for _, fe := range fes {
		g.Go(func() error { return fe.Serve(ctx) })
	}
	g.Go(func() error { return grpcSrv.Serve(grpcLis) })
	if hopLis != nil {
		g.Go(func() error { return grpcSrv.Serve(hopLis) })
	}
	g.Go(func() error { return rpcSrv.Serve(rpcLis) })
	g.Go(func() error {
		if err := httpSrv.Serve(apiLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	var metricsSrv *http.Server
	if metricsLis != nil {
		metricsSrv = &http.Server{
			Handler:           met.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
		}
		g.Go(func() error {
			if err := metricsSrv.Serve(metricsLis); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-ctx.Done()
		held.Gate.Close() // held requests are released now: adds answered 7 to be sent again, others cut (httpapi Config.Stopping)
		drain()           // requests delayed by the rate limit are served now (httpserver.go)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		// Front doors first: HTTP forwards to gRPC.
		err := shutdownPublic(sctx, httpSrv, onion, log)
		if metricsSrv != nil {
			err = errors.Join(err, shutdownHTTP(sctx, metricsSrv, "metrics", log))
		}
		stopGRPC(grpcSrv)
		stopGRPC(rpcSrv) // drains the stop call that may have started all this
		return err
	})
	ready := []any{"api", httpLis.Addr().String(), "internal_api", grpcLis.Addr().String(),
		"rpc", rpcLis.Addr().String(), "height", mon.Height()}
	if metricsLis != nil {
		ready = append(ready, "metrics", metricsLis.Addr().String())
	}
	log.Info("tower ready", ready...)
	err = g.Wait()
	log.Info("shutting down")
	if err != nil {
		return servingError{err}
	}
	return nil
}

// stopWhenUnsynced ends teosd with an error once the store refuses every write after a failed
// flush (store.ErrUnsynced) or a write that hit a damaged page (store.ErrDamaged), which only
// reopening the file clears; cause says which. A running tower would answer
// each add 503 once its hold runs out, which the CLN plugin files as a refusal; a stopped one is
// unreachable, and the plugin keeps the appointment and retries. The service manager
// (Restart=on-failure in contrib/init/teosd.service) starts it again.
func stopWhenUnsynced(ctx context.Context, unsynced <-chan struct{}, cause func() error) error {
	select {
	case <-unsynced:
		return fmt.Errorf("database: %w; stopping so that a restart reopens it", cause())
	case <-ctx.Done():
		return nil
	}
}

// servingError is a failure of the running tower (or of its shutdown), as opposed to one of
// its start-up, which a stop requested meanwhile explains (run).
type servingError struct{ error }

func (e servingError) Unwrap() error { return e.error }

// stopGRPC lets in-flight calls finish, for at most 10 s.
func stopGRPC(srv *grpc.Server) {
	t := time.AfterFunc(10*time.Second, srv.Stop)
	defer t.Stop()
	srv.GracefulStop()
}

// grpcLogger routes grpc-go's own logs to slog: warnings and errors normally, everything with
// --depsdebug (docs/PROTOCOL.md §12 deps_debug).
type grpcLogger struct {
	log     *slog.Logger
	verbose bool
}

func newGRPCLogger(w io.Writer, depsDebug bool) grpcLogger {
	level := slog.LevelWarn
	if depsDebug {
		level = slog.LevelDebug
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	return grpcLogger{log: slog.New(h).With("component", "grpc-go"), verbose: depsDebug}
}

func (g grpcLogger) Info(args ...any)                    { g.log.Info(fmt.Sprint(args...)) }
func (g grpcLogger) Infoln(args ...any)                  { g.log.Info(fmt.Sprint(args...)) }
func (g grpcLogger) Infof(format string, args ...any)    { g.log.Info(fmt.Sprintf(format, args...)) }
func (g grpcLogger) Warning(args ...any)                 { g.log.Warn(fmt.Sprint(args...)) }
func (g grpcLogger) Warningln(args ...any)               { g.log.Warn(fmt.Sprint(args...)) }
func (g grpcLogger) Warningf(format string, args ...any) { g.log.Warn(fmt.Sprintf(format, args...)) }
func (g grpcLogger) Error(args ...any)                   { g.log.Error(fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any)                 { g.log.Error(fmt.Sprint(args...)) }
func (g grpcLogger) Errorf(format string, args ...any)   { g.log.Error(fmt.Sprintf(format, args...)) }
func (g grpcLogger) V(int) bool                          { return g.verbose }

func (g grpcLogger) Fatal(args ...any)                 { g.fatal(fmt.Sprint(args...)) }
func (g grpcLogger) Fatalln(args ...any)               { g.fatal(fmt.Sprint(args...)) }
func (g grpcLogger) Fatalf(format string, args ...any) { g.fatal(fmt.Sprintf(format, args...)) }

// fatal must not return (grpclog's contract).
func (g grpcLogger) fatal(msg string) {
	g.log.Error(msg)
	os.Exit(1)
}

// towerKey loads the newest tower key, or creates one on first start or with --overwritekey
// (old keys are kept in the store).
func towerKey(db store.Engine, overwrite bool) (*btcec.PrivateKey, error) {
	if key, ok, err := sharedTowerKey(db); ok && !overwrite {
		return key, err
	}
	if !overwrite {
		sk, ok, err := db.TowerKey()
		if err != nil {
			return nil, fmt.Errorf("load tower key: %w", err)
		}
		if ok {
			key, _ := btcec.PrivKeyFromBytes(sk[:])
			return key, nil
		}
	}
	key, err := btcec.NewPrivateKey()
	if err != nil {
		return nil, fmt.Errorf("generate tower key: %w", err)
	}
	var sk [32]byte
	key.Key.PutBytesUnchecked(sk[:])
	if err := db.AddTowerKey(sk); err != nil {
		return nil, fmt.Errorf("store tower key: %w", err)
	}
	return key, nil
}

func connectBitcoind(ctx context.Context, cfg *config.Config, log *slog.Logger, onReach func(bool, error)) (*bitcoind.Client, error) {
	user, pass := cfg.BTCRPCUser, cfg.BTCRPCPassword
	var reload func() (string, string, error)
	if cfg.BTCRPCCookie != "" {
		var err error
		if user, pass, err = config.ReadCookie(cfg.BTCRPCCookie); err != nil {
			return nil, fmt.Errorf("read bitcoind cookie: %w", err)
		}
		// bitcoind writes a new cookie on every start: read it again when refused.
		reload = func() (string, string, error) { return config.ReadCookie(cfg.BTCRPCCookie) }
	}
	host := net.JoinHostPort(cfg.BTCRPCConnect, strconv.Itoa(int(cfg.BitcoindRPCPort())))
	btc, err := bitcoind.New(bitcoind.Config{Host: host, User: user, Pass: pass, Timeout: 30 * time.Second,
		Credentials: reload, Logger: log, OnReachability: onReach, ProbeEvery: bitcoindProbe})
	if err != nil {
		return nil, fmt.Errorf("bitcoind client: %w", err)
	}
	chainName, err := btc.ChainName(ctx)
	if err != nil {
		btc.Close()
		return nil, fmt.Errorf("cannot connect to bitcoind at %s: %w", host, err)
	}
	if want := cfg.BitcoindNetwork(); chainName != want {
		btc.Close()
		return nil, fmt.Errorf("bitcoind is running on %s but teosd is set to run on %s", chainName, want)
	}
	return btc, nil
}

// startTip picks the block the tower resumes from: the last one it processed, or bitcoind's
// tip on first start. On a pruned node whose blocks since then are gone it refuses to start
// unless --forceupdate, which skips ahead (appointments in the skipped blocks may be missed).
func startTip(ctx context.Context, cfg *config.Config, db store.Engine, btc *bitcoind.Client, log *slog.Logger) (chainhash.Hash, uint32, error) {
	hash, height, ok, err := db.LastBlock()
	if err != nil {
		return hash, 0, fmt.Errorf("load last block: %w", err)
	}
	if !ok {
		if hash, err = btc.BestBlockHash(ctx); err != nil {
			return hash, 0, fmt.Errorf("get best block: %w", err)
		}
		if height, err = btc.BlockHeight(ctx, hash); err != nil {
			return hash, 0, fmt.Errorf("get best block height: %w", err)
		}
	}
	if height < minChainHeight {
		return hash, 0, fmt.Errorf("Not enough blocks to start teosd (height %d, need %d)", height, minChainHeight)
	}
	pruneHeight, pruned, err := btc.PruneHeight(ctx)
	if err != nil {
		return hash, 0, fmt.Errorf("get prune height: %w", err)
	}
	if pruned && height-chain.Window+1 < pruneHeight {
		if !cfg.ForceUpdate {
			return hash, 0, fmt.Errorf("the blocks since the last one teosd processed (%d) were pruned by bitcoind (prune height %d); restart with --forceupdate to skip them, knowing appointments triggered in them may be missed", height, pruneHeight)
		}
		height = pruneHeight + chain.Window
		if hash, err = btc.BlockHash(ctx, height); err != nil {
			return hash, 0, fmt.Errorf("get block at %d: %w", height, err)
		}
		log.Warn("skipping pruned blocks (--forceupdate)", "height", height)
		ok = false
	}
	if !ok {
		// Persist the starting point at once: blocks mined after it must still be processed
		// if teosd stops before its first poll.
		if err := db.SetLastBlock(hash, height); err != nil {
			return hash, 0, fmt.Errorf("store start block: %w", err)
		}
	}
	return hash, height, nil
}

// seed fills the responder's tx index with the last Window blocks and the watcher's locator
// cache with the newest of them, as the tower had them before it stopped.
func seed(ctx context.Context, btc *bitcoind.Client, mon *chain.Monitor, w *watcher.Watcher, resp *responder.Responder) error {
	hashes := mon.Recent()
	for i, l := range hashes {
		block, err := btc.Block(ctx, l.Hash)
		if err != nil {
			return fmt.Errorf("load block %s: %w", l.Hash, err)
		}
		resp.SeedBlock(block, l.Height)
		if i >= len(hashes)-watcher.CacheBlocks {
			w.SeedBlock(block)
		}
	}
	return nil
}
