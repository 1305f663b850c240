package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A client gone while the server sends it a result larger than the sockets' buffers (a batch
// of large appointments, a mass expiry's user ids) leaves its backend blocked in send, which
// is not "idle in transaction": it keeps its transaction and locks until the kernel gives the
// connection up, about 15 minutes of retransmissions for a lost machine and never for a
// stopped process, whose kernel keeps acknowledging with a zero window. tcp_user_timeout
// (PostgreSQL 12 or later) ends the connection once sent data has waited that long for room
// at the client: the session-wide idleInTxTimeout, and lockHoldIdleTimeout in the
// transactions that hold the adds' lock or user rows (lockHoldSQL).

// sendBounded tells whether the server of pc has tcp_user_timeout.
func sendBounded(pc *pgconn.PgConn) bool {
	v := pc.ParameterStatus("server_version") // "15.18 (Debian 15.18-0+deb12u1)"
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(v)
	}
	major, err := strconv.Atoi(v[:end])
	return err == nil && major >= 12
}

// sendBoundApplies tells whether tcp_user_timeout takes effect on c's server connection: the
// server shows 0 over a Unix socket and on a platform without the socket option (where each SET
// logs a line); the transactions then do not set it. Asked in one transaction, so that behind a
// transaction-mode pooler the answer is about the server connection that ran the SET.
func sendBoundApplies(ctx context.Context, c *pgx.Conn) bool {
	tx, err := c.Begin(ctx)
	if err != nil {
		return true // the SET LOCAL is harmless where it is not needed
	}
	defer tx.Rollback(ctx)
	var v string
	if _, err := tx.Exec(ctx, tcpUserTimeoutSQL(true, lockHoldIdleTimeout)); err != nil {
		return true
	}
	if err := tx.QueryRow(ctx, `SHOW tcp_user_timeout`).Scan(&v); err != nil {
		return true
	}
	return v != "0"
}

func tcpUserTimeoutSQL(local bool, d time.Duration) string {
	set := "SET"
	if local {
		set = "SET LOCAL"
	}
	return fmt.Sprintf(`%s tcp_user_timeout = %d`, set, d.Milliseconds())
}

// lockHoldSQL bounds the current transaction's idle time, and its wait for a client to take
// what it sends if sendBound, to lockHoldIdleTimeout.
func lockHoldSQL(sendBound bool) string {
	if !sendBound {
		return lockHoldIdleSQL()
	}
	return lockHoldIdleSQL() + "; " + tcpUserTimeoutSQL(true, lockHoldIdleTimeout)
}
