package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/bitcoind"
)

// bitcoind answering getblockchaininfo with body, whatever is asked.
func infoNode(t *testing.T, body string) *bitcoind.Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"result":`+body+`,"error":null,"id":1}`)
	}))
	t.Cleanup(srv.Close)
	c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(srv.URL, "http://"), User: "u", Pass: "p", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestWarnIfSyncing(t *testing.T) {
	for _, tc := range []struct {
		name, info string
		warn       bool
	}{
		{"initial block download", `{"chain":"main","blocks":512000,"headers":870000,"initialblockdownload":true,"verificationprogress":0.42}`, true},
		{"synced", `{"chain":"main","blocks":870000,"headers":870000,"initialblockdownload":false,"verificationprogress":0.99999}`, false},
		{"btcd", `{"chain":"regtest","blocks":110,"headers":110}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			warnIfSyncing(t.Context(), infoNode(t, tc.info), slog.New(slog.NewTextHandler(&logs, nil)))
			got := strings.Contains(logs.String(), `level=WARN msg="bitcoind is still in initial block download`) &&
				strings.Contains(logs.String(), "blocks=512000 headers=870000 progress=0.42")
			if got != tc.warn || (!tc.warn && logs.Len() != 0) {
				t.Fatalf("warned %v, want %v:\n%s", got, tc.warn, logs.String())
			}
		})
	}
}
