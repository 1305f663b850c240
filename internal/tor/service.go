package tor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// ServiceConfig is what Publish needs.
type ServiceConfig struct {
	ControlAddr string    // tor's control port, "127.0.0.1:9051"
	Key         SecretKey // onion_v3_sk
	VirtualPort uint16    // the port onion clients connect to (onion_hidden_service_port)
	Target      string    // where tor forwards them: the public API's listener, "host:port"
	Logger      *slog.Logger

	// Backoff between attempts starts at MinBackoff and doubles up to MaxBackoff
	// (defaults 1 s and 1 min).
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds each control command (DefaultTimeout if zero).
	Timeout time.Duration
}

// Publish keeps the onion service published until ctx is done, then removes it. While tor
// is unreachable or refuses teosd it logs why, once per distinct reason, and retries with
// backoff; the clearnet API is unaffected.
func Publish(ctx context.Context, cfg ServiceConfig) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	minB, maxB := cfg.MinBackoff, cfg.MaxBackoff
	if minB <= 0 {
		minB = time.Second
	}
	if maxB < minB {
		maxB = max(time.Minute, minB)
	}
	addr := cfg.Key.Address() + ":" + strconv.Itoa(int(cfg.VirtualPort))
	backoff := minB
	lastErr := ""
	for {
		conn, err := publishOnce(ctx, cfg)
		if err == nil {
			log.Info("Onion service: " + addr)
			lastErr, backoff = "", minB
			select {
			case <-ctx.Done():
				remove(conn, cfg, log, addr)
				return
			case <-conn.Done():
				err = fmt.Errorf("Tor control connection lost, onion service %s is down: %w", addr, conn.Err())
				conn.Close()
			}
		}
		if ctx.Err() != nil {
			return
		}
		msg := err.Error() + "; serving clearnet only, retrying"
		if msg != lastErr {
			log.Warn(msg, "control_port", cfg.ControlAddr)
			lastErr = msg
		} else {
			log.Debug(msg, "control_port", cfg.ControlAddr, "in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxB)
	}
}

// publishOnce connects, authenticates and adds the service; on success the connection stays
// open, since tor removes a non-detached service when its connection closes.
func publishOnce(ctx context.Context, cfg ServiceConfig) (*Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := Dial(dctx, cfg.ControlAddr)
	cancel()
	if err != nil {
		return nil, err
	}
	if cfg.Timeout > 0 {
		conn.Timeout = cfg.Timeout
	}
	// A cancelled ctx must not leave the attempt hanging on a silent peer.
	stop := context.AfterFunc(ctx, func() { conn.nc.Close() })
	defer stop()
	fail := func(err error) (*Conn, error) {
		conn.Close()
		return nil, err
	}
	pi, err := conn.ProtocolInfo()
	if err != nil {
		return fail(err)
	}
	if err := conn.Authenticate(pi); err != nil {
		return fail(err)
	}
	id, err := conn.AddOnion(cfg.Key, cfg.VirtualPort, cfg.Target)
	if err != nil {
		if re := (*ReplyError)(nil); errors.As(err, &re) {
			return fail(fmt.Errorf("Tor refused the onion service: %w", err))
		}
		return fail(fmt.Errorf("add the onion service: %w", err)) // no answer or connection lost: tor refused nothing
	}
	if want := cfg.Key.ServiceID(); id != want {
		return fail(fmt.Errorf("tor published %s.onion for onion_v3_sk, which is %s.onion", id, want))
	}
	if !stop() {
		return fail(ctx.Err())
	}
	return conn, nil
}

func remove(conn *Conn, cfg ServiceConfig, log *slog.Logger, addr string) {
	defer conn.Close()
	conn.Timeout = 5 * time.Second // shutting down: do not wait long on tor
	if err := conn.DelOnion(cfg.Key.ServiceID()); err != nil {
		log.Warn("Tor: remove onion service " + addr + ": " + err.Error() + " (tor drops it anyway when the control connection closes)")
		return
	}
	log.Info("Onion service removed: " + addr)
}

// Target is the address tor forwards onion connections to for an API listening on addr: the
// listener itself, or loopback when it listens on every interface.
func Target(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
		if tcp.IP != nil && tcp.IP.To4() == nil {
			ip = net.IPv6loopback
		}
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}
