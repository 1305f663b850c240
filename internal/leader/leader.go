// Package leader elects one leader among the teosd instances sharing a PostgreSQL database:
// the instance holding a session-level advisory lock on a dedicated connection leads. The
// lock goes with the session, so a leader that dies or loses its connection releases it and
// another instance takes it at its next try; a leader whose connection stops answering steps
// down itself at its next check. Until that check, an old leader may still be acting: with
// Config.NewTerm each leadership gets a term its writes are fenced with, and a leader told
// (StepDown) that a write of its term was refused steps down at once.
package leader

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// LockKey is the advisory lock of the tower's leadership ("teoslead" in ASCII).
const LockKey int64 = 0x74656f736c656164

// Config wires an Elector.
type Config struct {
	URL string // the database's URL
	// Name identifies this instance to the others (its election connection's
	// application_name, so Leader can tell who leads); cut to what PostgreSQL keeps.
	Name string
	// Every is how often a follower tries the lock and a leader checks its connection; it
	// bounds the failover time after a crash (plus PostgreSQL noticing the dead session).
	Every  time.Duration
	Logger *slog.Logger
	// OnChange, if set, is called with the new state each time it changes.
	OnChange func(leading bool)
	// NewTerm, if set, starts a leadership term on the lock's session right after the lock is
	// won, before this instance leads (pgstore.NewTerm); if it fails, the lock is let go.
	NewTerm func(ctx context.Context, conn *pgx.Conn) (int64, error)
	// CanLead, if set, is asked once per period (within it, by ctx) whether this instance can
	// do the leader's work (its bitcoind answers, its blocks do not keep failing): a follower
	// that cannot does not campaign, and a leader that cannot for unfitRounds periods in a row
	// lets the lock go, so that one instance's fault does not stop block processing for all.
	CanLead func(ctx context.Context) bool
}

// unfitRounds is how many periods in a row a leader must fail CanLead before it steps down: a
// single slow answer is no reason to move the leadership.
const unfitRounds = 3

// termTimeout bounds NewTerm: it waits for the previous leader's writes in flight, each
// bounded by the store's own operation timeout.
const termTimeout = 35 * time.Second

// Elector runs the election for one instance.
type Elector struct {
	cfg Config
	log *slog.Logger

	dbOK      atomic.Bool // the last round trip to the database succeeded
	oldServer atomic.Bool // the server has no idle_session_timeout (warned once)
	unfit     int         // periods in a row a leader failed CanLead; Run's goroutine only
	benched   bool        // a follower not campaigning because CanLead said no; Run's goroutine only

	mu      sync.Mutex
	leading bool
	term    int64         // of the current leadership (NewTerm), 0 while following
	down    bool          // StepDown asked to step down from the current leadership
	said    bool          // the follower state was logged
	changed chan struct{} // closed and replaced on every change
	leader  string        // the leading instance's name (name.go)
	kick    chan struct{} // wakes Run for StepDown
}

// New returns an elector; it is a follower until Run wins the lock.
func New(cfg Config) *Elector {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	cfg.Name = cleanName(cfg.Name)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Elector{cfg: cfg, log: log, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
	e.dbOK.Store(true) // the caller has just opened the database; Run's round trips keep it current
	return e
}

// DatabaseReachable reports whether the elector's last round trip to the database, at most
// one period ago, succeeded.
func (e *Elector) DatabaseReachable() bool { return e.dbOK.Load() }

// Leading reports whether this instance leads, and a channel closed when that changes.
func (e *Elector) Leading() (bool, <-chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading, e.changed
}

// Term is the term of this instance's leadership (Config.NewTerm), 0 while it follows or
// without NewTerm.
func (e *Elector) Term() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.term
}

// StepDown makes the instance give up the leadership of term at once, if it still holds it:
// for a write of that term refused because another instance started a newer one, which means
// this instance's lock session is gone though it has not noticed yet. It does not block.
func (e *Elector) StepDown(term int64) {
	e.mu.Lock()
	ask := e.leading && e.term == term
	e.down = e.down || ask
	e.mu.Unlock()
	if ask {
		select {
		case e.kick <- struct{}{}:
		default: // Run is already woken
		}
	}
}

func (e *Elector) set(leading bool, term int64) {
	e.mu.Lock()
	e.down = false
	if e.leading == leading {
		e.mu.Unlock()
		return
	}
	e.leading = leading
	e.term = term
	e.said = !leading
	e.leader = ""
	if leading {
		e.leader = e.cfg.Name
	}
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
	if leading {
		e.log.Info("leadership acquired: this instance follows the chain", "term", term)
	} else {
		e.log.Info("following: another instance leads, or the database is unreachable")
	}
	if e.cfg.OnChange != nil {
		e.cfg.OnChange(leading)
	}
}

// Run campaigns until ctx is done, then releases the lock (closing the connection).
func (e *Elector) Run(ctx context.Context) error {
	var conn *pgx.Conn
	drop := func() {
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = conn.Close(cctx)
			cancel()
			conn = nil
		}
		e.set(false, 0)
		e.setLeader("") // unknown until the database answers again
	}
	defer drop()
	warned := false
	t := time.NewTicker(e.cfg.Every)
	defer t.Stop()
	for {
		e.step(ctx, &conn, drop, &warned)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.kick:
			e.mu.Lock()
			down := e.down
			e.mu.Unlock()
			if down {
				e.log.Warn("leadership lost: another instance started a newer term; stepping down")
				drop() // closing the session lets go of the lock, were it still held
			}
		}
	}
}

// canLead asks Config.CanLead within half the period, so that a hung bitcoind leaves the
// round's database calls their time.
func (e *Elector) canLead(ctx context.Context) bool {
	if e.cfg.CanLead == nil {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, max(e.cfg.Every/2, 500*time.Millisecond))
	defer cancel()
	return e.cfg.CanLead(cctx)
}

func (e *Elector) step(ctx context.Context, conn **pgx.Conn, drop func(), warned *bool) {
	// Each round trip is bounded well under the period, so a hung database is noticed.
	octx, cancel := context.WithTimeout(ctx, max(e.cfg.Every, time.Second))
	defer cancel()
	if *conn == nil {
		c, err := e.connect(octx)
		if err != nil {
			e.dbOK.Store(false)
			if !*warned && ctx.Err() == nil {
				e.log.Warn("leader election: database unreachable", "err", err)
				*warned = true
			}
			return
		}
		*conn, *warned = c, false
	}
	leading, _ := e.Leading()
	canLead := e.canLead(octx)
	if leading && !canLead {
		if e.unfit++; e.unfit >= unfitRounds {
			e.log.Warn("leadership given up: this instance cannot lead (its bitcoind does not answer, or its block processing keeps failing)", "periods", e.unfit)
			e.unfit = 0
			drop() // closing the session lets go of the lock
			return
		}
	} else {
		e.unfit = 0
	}
	if leading {
		// The lock lives as long as the session: check the session still does.
		if _, err := (*conn).Exec(octx, "SELECT 1"); err != nil {
			e.dbOK.Store(false)
			if ctx.Err() == nil {
				e.log.Warn("leader election: lost the database connection, stepping down", "err", err)
			}
			drop()
			return
		}
		e.dbOK.Store(true)
		return
	}
	if canLead == e.benched {
		e.benched = !canLead
		if e.benched {
			e.log.Warn("not campaigning for the leadership: this instance cannot lead (its bitcoind does not answer, or it just gave the leadership up)")
		} else {
			e.log.Info("campaigning for the leadership again: this instance can lead")
		}
	}
	var got bool // stays false while this instance cannot lead: it follows, and says who leads
	var err error
	if canLead {
		err = (*conn).QueryRow(octx, "SELECT pg_try_advisory_lock($1)", LockKey).Scan(&got)
	} else {
		// Still one round trip a period: a lost session is replaced, and dbOK stays current.
		err = (*conn).Ping(octx)
	}
	if err != nil {
		e.dbOK.Store(false)
		drop()
		return
	}
	e.dbOK.Store(true)
	if got {
		var term int64
		if e.cfg.NewTerm != nil {
			tctx, tcancel := context.WithTimeout(ctx, termTimeout)
			var err error
			term, err = e.cfg.NewTerm(tctx, *conn)
			tcancel()
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("leader election: won the lock but could not start a term; letting it go", "err", err)
				}
				drop()
				return
			}
		}
		e.set(true, term)
		return
	}
	// Only shown (get_tower_info): a failure is no reason to drop the connection.
	name, err := holder(octx, *conn)
	if err != nil && ctx.Err() == nil {
		e.log.Debug("leader election: cannot tell which instance leads", "err", err)
	}
	e.setLeader(name)
	e.mu.Lock()
	say := !e.said
	e.said = true
	e.mu.Unlock()
	if say {
		e.log.Info("following: another instance leads")
	}
}
