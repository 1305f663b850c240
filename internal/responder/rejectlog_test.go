package responder

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/pkg/teos"
)

// An appointment dropped because bitcoind rejected its penalty is logged with bitcoind's
// reason, at the level teosd logs by default: the code alone (-26 covers dozens of policy
// rules) does not tell an operator whether the user's penalty was at fault. The carrier logs
// the reason only at debug level.
func TestRejectionLoggedWithReason(t *testing.T) {
	const reason = "bad-txns-nonstandard-inputs"
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	t.Run("first broadcast", func(t *testing.T) {
		logs.Reset()
		e := newEnv(t)
		e.r = New(Config{Store: e.store, Carrier: e.carrier, Logger: logger}, startHeight)
		b := e.newBreach(t, 1)
		e.carrier.script(b.penalty, carrier.Result{Status: carrier.StatusRejected, Code: -26, Reason: reason})
		if e.handle(t, b) {
			t.Fatal("rejected penalty tracked")
		}
		if !strings.Contains(logs.String(), reason) {
			t.Fatalf("rejection logged without bitcoind's reason %q:\n%s", reason, logs.String())
		}
	})
	t.Run("re-send", func(t *testing.T) {
		logs.Reset()
		e := newEnv(t)
		e.r = New(Config{Store: e.store, Carrier: e.carrier, Logger: logger}, startHeight)
		b := e.newBreach(t, 1)
		if !e.handle(t, b) {
			t.Fatal("breach not tracked")
		}
		e.carrier.script(b.penalty, carrier.Result{Status: carrier.StatusRejected, Code: -26, Reason: reason})
		e.connectRange(t, startHeight+1, startHeight+teos.ConfirmationsBeforeRetry)
		e.wantGone(t, b)
		if !strings.Contains(logs.String(), reason) {
			t.Fatalf("drop on re-send logged without bitcoind's reason %q:\n%s", reason, logs.String())
		}
	})
}
