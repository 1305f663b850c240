package leader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxName is what PostgreSQL keeps of an application_name (NAMEDATALEN-1 bytes).
const maxName = 63

// cleanName makes name an application_name PostgreSQL keeps as is: printable ASCII (other
// characters become '?'), at most maxName bytes. An instance shows its own name this way too,
// so that what it says of itself and what the others read match.
func cleanName(name string) string {
	b := []byte(strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '?'
		}
		return r
	}, name))
	return string(b[:min(len(b), maxName)])
}

// holderQuery names the session holding LockKey in this database by the application_name
// every elector sets to its instance's name (Config.Name). A bigint advisory lock shows in
// pg_locks as classid (high half), objid (low half) and objsubid 1.
const holderQuery = `SELECT a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = $1 AND l.objid::bigint = $2`

// unnamed is shown for a leader that set no name (an older teosd).
const unnamed = "(unnamed instance)"

// holder returns the leading instance's name, "" if no session holds the lock.
func holder(ctx context.Context, conn *pgx.Conn) (string, error) {
	var name string
	key := uint64(LockKey)
	err := conn.QueryRow(ctx, holderQuery, int64(key>>32), int64(key&0xffffffff)).Scan(&name)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", err
	case name == "":
		return unnamed, nil
	}
	return name, nil
}

// connect opens the election's connection, named after the instance, and has the server end
// the session once it is idle for longer than idleTimeout.
func (e *Elector) connect(ctx context.Context) (*pgx.Conn, error) {
	// Parsed as the store's pool parses it: a pgx pool parameter (pool_max_conns...) the store
	// takes would otherwise be sent to the server, which refuses the connection for it.
	pcfg, err := pgxpool.ParseConfig(e.cfg.URL)
	if err != nil {
		return nil, err
	}
	cfg := pcfg.ConnConfig
	if e.cfg.Name != "" {
		cfg.RuntimeParams["application_name"] = e.cfg.Name
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The lock lives as long as the session, and PostgreSQL ends the session of a leader whose
	// machine is lost, whose network is cut or whose process is stopped only when TCP keepalive
	// gives up (hours by default): until then no instance could lead. Every instance uses its
	// session at least once a period, so one idle for longer is gone.
	_, err = conn.Exec(ctx, fmt.Sprintf("SET idle_session_timeout = %d", idleTimeout(e.cfg.Every).Milliseconds()))
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "42704" {
		// PostgreSQL before 14: only TCP keepalive ends a lost leader's session.
		if !e.oldServer.Swap(true) {
			e.log.Warn("leader election: PostgreSQL before 14 has no idle_session_timeout; a lost leader's lock is released only when TCP keepalive gives up")
		}
		err = nil
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(cctx)
		cancel()
		return nil, fmt.Errorf("set idle_session_timeout: %w", err)
	}
	return conn, nil
}

// idleTimeout is how long the server lets an election session stay idle: the elector's round
// trips are at most every apart, and the margin covers a late tick.
// PostgreSQL takes at most 2^31-1 ms (about 24 days).
func idleTimeout(every time.Duration) time.Duration {
	return min(2*min(every, 24*time.Hour)+5*time.Second, math.MaxInt32*time.Millisecond)
}

// Name is this instance's name as the other instances see it.
func (e *Elector) Name() string { return e.cfg.Name }

// Leader is the leading instance's name as of the last round (at most Every ago): this
// one's while it leads, "" while no instance leads or the database cannot be asked.
func (e *Elector) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

func (e *Elector) setLeader(name string) {
	e.mu.Lock()
	e.leader = name
	e.mu.Unlock()
}
