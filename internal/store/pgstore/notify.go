package pgstore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// HandOverChannel is the NOTIFY channel of queued hand-overs: every transaction that queues one
// (an add whose dispute is already mined, QueueMissed) notifies it, and PostgreSQL delivers the
// notification at commit, so the leader can drain the queue at once rather than at its next
// poll.
const HandOverChannel = "teos_handovers"

const notifyHandOverSQL = `SELECT pg_notify('` + HandOverChannel + `', '')`

// ListenHandOvers calls wake each time any instance commits a queued hand-over, until ctx is
// done. It listens on a connection of its own; notifications sent while that connection is
// down are lost, so it also calls wake each time it starts listening, and the caller's poll
// covers the gap. A lost connection is retried every retry. A connection quiet for retry is
// checked with an empty query: one dropped silently on the way (a NAT's idle timeout) would
// otherwise be noticed only by TCP keepalive, many minutes later.
func (s *Store) ListenHandOvers(ctx context.Context, retry time.Duration, wake func(), log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retry = max(retry, 100*time.Millisecond)
	warned := false
	listening := func() {
		if warned {
			log.Info("hand-over notifications back")
			warned = false
		}
		wake() // what was queued while nobody listened
	}
	for ctx.Err() == nil {
		err := s.listen(ctx, retry, listening, wake)
		if ctx.Err() != nil {
			return
		}
		if !warned {
			log.Warn("hand-over notifications lost; falling back to polling until they are back", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

// listenCheckTimeout bounds the check of a quiet LISTEN connection: long enough that a busy
// database is not taken for a dead connection.
var listenCheckTimeout = 10 * time.Second

// listen runs one LISTEN session until it fails or ctx is done; listening is called once it
// listens, and the connection is checked after every quiet period of check.
func (s *Store) listen(ctx context.Context, check time.Duration, listening, wake func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+HandOverChannel); err != nil {
		return err
	}
	listening()
	for {
		wctx, cancel := context.WithTimeout(ctx, check)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if err == nil {
			wake()
			continue
		}
		if ctx.Err() != nil || !pgconn.Timeout(err) {
			return err
		}
		// A notification arriving meanwhile is kept by the connection for the next wait.
		pctx, cancel := context.WithTimeout(ctx, listenCheckTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("check the listening connection: %w", err)
		}
	}
}
