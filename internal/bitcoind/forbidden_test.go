package bitcoind_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/bitcoind"
)

// bitcoind answers 401 to a wrong password but 403 to an address outside its rpcallowip (or a
// method outside rpcwhitelist), before it looks at the credentials: the operator is told which.
func TestForbiddenIsNotCredentials(t *testing.T) {
	for _, tc := range []struct {
		status         int
		forbidden      bool
		errHas, logHas string
		errNot, logNot string
	}{
		{http.StatusForbidden, true, "rpcallowip", "REFUSED TEOSD'S CALLS (HTTP 403)", "credentials", "CREDENTIALS"},
		{http.StatusUnauthorized, false, "refused the RPC credentials (HTTP 401)", "REFUSED THE RPC CREDENTIALS", "rpcallowip", "rpcallowip"},
	} {
		var logs bytes.Buffer
		f := newFakeNode(t, reply{tc.status, ""})
		c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(f.srv.URL, "http://"), User: "u", Pass: "p",
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.BestBlockHash(t.Context())
		c.Close()
		if !bitcoind.IsUnauthorized(err) || !bitcoind.IsUnreachable(err) || errors.Is(err, bitcoind.ErrForbidden) != tc.forbidden {
			t.Fatalf("HTTP %d: %v, want unauthorized, unreachable, forbidden %v", tc.status, err, tc.forbidden)
		}
		if !strings.Contains(err.Error(), tc.errHas) || strings.Contains(err.Error(), tc.errNot) {
			t.Fatalf("HTTP %d: error %q, want %q in it and not %q", tc.status, err, tc.errHas, tc.errNot)
		}
		if !strings.Contains(logs.String(), tc.logHas) || strings.Contains(logs.String(), tc.logNot) {
			t.Fatalf("HTTP %d: log %q, want %q in it and not %q", tc.status, logs.String(), tc.logHas, tc.logNot)
		}
	}
}
