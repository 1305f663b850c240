package pgstore

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
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
// covers the gap. A lost connection is retried every retry.
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
		err := s.listen(ctx, listening, wake)
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

// listen runs one LISTEN session until it fails or ctx is done; listening is called once it
// listens.
func (s *Store) listen(ctx context.Context, listening, wake func()) error {
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
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}
