// Package pgstore is the PostgreSQL engine of the store contract (store.Engine), for towers
// whose instances share one database. Each logical operation is one transaction; appointment
// and user writes go through a group commit like the bbolt engine's; a block's matches are one
// indexed query over its locators.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/teos-go/teos/internal/store"
)

// opTimeout bounds one operation, so a database that stops answering turns into an error
// rather than a hang (a variable for tests).
var opTimeout = 30 * time.Second

// idleInTxTimeout is how long the server keeps a transaction its client left idle. A client
// that is gone (its machine lost, its network cut, its process stopped) leaves its open
// transaction, and the row locks it holds, until TCP keepalive gives up, hours by default: a
// lost leader's fenced write would block every new term (fence.go). The client itself gives a
// transaction up after opTimeout, so none it still wants stays idle that long.
var idleInTxTimeout = opTimeout

// Options tunes the engine; zero fields keep the defaults.
type Options struct {
	// Network is the tower's network; Open refuses a database created by another network's
	// tower. Empty skips the check.
	Network      string
	MaxBatchSize int // writes sharing one commit (1000)
	MaxConns     int32
	// Log receives the schema migration's progress; nil discards it.
	Log *slog.Logger
}

// Store is the PostgreSQL engine. Its methods are safe for concurrent use, also from several
// processes on the same database.
type Store struct {
	pool   *pgxpool.Pool
	writes *committer
	fence  atomic.Pointer[fenceTerm] // nil: never fenced (fence.go)
	// sendBound: the server has tcp_user_timeout (sendbound.go).
	sendBound bool
}

var _ store.Engine = (*Store)(nil)

// Open connects to the database at url, creates or migrates the schema and checks it belongs
// to opts.Network's tower.
func Open(ctx context.Context, url string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database_url: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	_, idleSet := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] // the URL's wins
	_, sendSet := cfg.ConnConfig.RuntimeParams["tcp_user_timeout"]
	// SET rather than a startup parameter, which a pooler in front may refuse.
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		var set []string
		if !idleSet {
			set = append(set, fmt.Sprintf("SET idle_in_transaction_session_timeout = %d", idleInTxTimeout.Milliseconds()))
		}
		if !sendSet && sendBounded(c.PgConn()) { // sendbound.go
			set = append(set, tcpUserTimeoutSQL(false, idleInTxTimeout))
		}
		if len(set) == 0 {
			return nil
		}
		_, err := c.Exec(ctx, strings.Join(set, "; "))
		return err
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	} else if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := migrate(ctx, pool, opts.Network, log); err != nil {
		pool.Close()
		if errors.Is(err, ErrNewerSchema) || errors.Is(err, ErrOtherNetwork) {
			return nil, err
		}
		return nil, fmt.Errorf("PostgreSQL at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, oneLine(err))
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("PostgreSQL at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, oneLine(err))
	}
	sendBound := sendBounded(conn.Conn().PgConn()) && sendBoundApplies(ctx, conn.Conn()) // sendbound.go
	conn.Release()
	return &Store{pool: pool, sendBound: sendBound, writes: newCommitter(pool, opts.MaxBatchSize, sendBound)}, nil
}

// oneLine keeps the reason of a connection failure short.
func oneLine(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap()
	}
	return err
}

// Pool is the connection pool, for the leader election that shares the database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close commits the queued writes and closes the connections.
func (s *Store) Close() error {
	s.writes.close()
	s.pool.Close()
	return nil
}

func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

func u32(v int64) uint32 { return uint32(v) }

// TowerKey returns the newest tower key.
func (s *Store) TowerKey() (sk [32]byte, ok bool, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	var b []byte
	err = s.pool.QueryRow(ctx, `SELECT secret FROM tower_keys ORDER BY seq DESC LIMIT 1`).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return sk, false, nil
	}
	if err != nil {
		return sk, false, fmt.Errorf("load tower key: %w", err)
	}
	if len(b) != 32 {
		return sk, false, fmt.Errorf("load tower key: %w: %d bytes", store.ErrCorrupt, len(b))
	}
	copy(sk[:], b)
	return sk, true, nil
}

// AddTowerKey stores sk as the current tower key; older keys are kept.
func (s *Store) AddTowerKey(sk [32]byte) error {
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := s.pool.Exec(ctx, `INSERT INTO tower_keys (secret) VALUES ($1)`, sk[:]); err != nil {
		return fmt.Errorf("add tower key: %w", err)
	}
	return nil
}

// TowerKeys returns every tower key, oldest first.
func (s *Store) TowerKeys() ([][32]byte, error) {
	ctx, cancel := opCtx()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT secret FROM tower_keys ORDER BY seq`)
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([32]byte, error) {
		var b []byte
		var sk [32]byte
		if err := r.Scan(&b); err != nil {
			return sk, err
		}
		if len(b) != 32 {
			return sk, fmt.Errorf("%w: tower key is %d bytes", store.ErrCorrupt, len(b))
		}
		copy(sk[:], b)
		return sk, nil
	})
	if err != nil {
		return nil, fmt.Errorf("load tower keys: %w", err)
	}
	return keys, nil
}

// LastBlock returns the last processed block.
func (s *Store) LastBlock() (hash chainhash.Hash, height uint32, ok bool, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	var b []byte
	var h int64
	err = s.pool.QueryRow(ctx, `SELECT hash, height FROM last_block`).Scan(&b, &h)
	if errors.Is(err, pgx.ErrNoRows) {
		return hash, 0, false, nil
	}
	if err != nil {
		return hash, 0, false, fmt.Errorf("load last block: %w", err)
	}
	if len(b) != chainhash.HashSize {
		return hash, 0, false, fmt.Errorf("load last block: %w: hash is %d bytes", store.ErrCorrupt, len(b))
	}
	copy(hash[:], b)
	return hash, u32(h), true, nil
}

// SetLastBlock records the last processed block (a leader-only write: fence.go).
func (s *Store) SetLastBlock(hash chainhash.Hash, height uint32) error {
	ctx, cancel := opCtx()
	defer cancel()
	err := s.leaderTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO last_block VALUES (1, $1, $2)
			ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, height = EXCLUDED.height`, hash[:], int64(height))
		return err
	})
	if err != nil {
		return fmt.Errorf("set last block %s: %w", hash, err)
	}
	return nil
}

// Counts returns the number of users, of appointments without a tracker and of trackers.
func (s *Store) Counts() (users, watcherAppointments, trackers int, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	var u, a, t int64
	err = s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM appointments),
		(SELECT count(*) FROM trackers)`).Scan(&u, &a, &t)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("count records: %w", err)
	}
	return int(u), int(a - t), int(t), nil
}

// WaitWrites returns once every write queued before the call has committed.
func (s *Store) WaitWrites() error {
	if err := s.writes.wait(); err != nil {
		return fmt.Errorf("wait for writes: %w", err)
	}
	return nil
}

// EnsureTowerKey returns the newest tower key, storing sk first if there is none. Instances
// starting together on an empty database all end up with the same key: the check and the
// insert run under the schema's advisory lock.
func (s *Store) EnsureTowerKey(sk [32]byte) ([32]byte, error) {
	ctx, cancel := opCtx()
	defer cancel()
	var out [32]byte
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLockKey)); err != nil {
			return err
		}
		var b []byte
		err := tx.QueryRow(ctx, `SELECT secret FROM tower_keys ORDER BY seq DESC LIMIT 1`).Scan(&b)
		if errors.Is(err, pgx.ErrNoRows) {
			out = sk
			_, err = tx.Exec(ctx, `INSERT INTO tower_keys (secret) VALUES ($1)`, sk[:])
			return err
		}
		if err != nil {
			return err
		}
		if len(b) != 32 {
			return fmt.Errorf("%w: tower key is %d bytes", store.ErrCorrupt, len(b))
		}
		copy(out[:], b)
		return nil
	})
	if err != nil {
		return [32]byte{}, fmt.Errorf("ensure tower key: %w", err)
	}
	return out, nil
}
