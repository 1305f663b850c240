package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/config"
)

func TestConnBudgetsFitTheOpenFilesLimit(t *testing.T) {
	for _, c := range []struct {
		name             string
		api, lnd         uint32
		lndOn            bool
		nofile           int
		wantAPI, wantLnd int
	}{
		{"no lnd port, no known limit", 8192, 1024, false, 0, 8192, 0},
		{"no lnd port, room for all", 8192, 1024, false, 1 << 20, 8192, 0},
		{"no lnd port, lowered as before", 8192, 1024, false, 4096, 3840, 0},
		{"no lnd port, no cap", 0, 1024, false, 4096, 3840, 0},
		{"no known limit", 8192, 1024, true, 0, 8192, 1024},
		{"room for both", 8192, 1024, true, 1 << 20, 8192, 1024},
		{"both exactly", 3000, 840, true, 4096, 3000, 840},
		{"the lnd port keeps its small cap", 8192, 1024, true, 4096, 2816, 1024},
		{"the public API keeps its small cap", 100, 1024, true, 1300, 100, 944},
		{"both over half: halves", 8192, 1024, true, 1300, 522, 522},
		{"lnd port with no cap", 8192, 0, true, 4096, 1920, 1920},
		{"lnd port with no cap beside a small API cap", 1000, 0, true, 4096, 1000, 2840},
		{"neither capped", 0, 0, true, 4096, 1920, 1920},
		{"a limit below the reserve", 8192, 1024, true, 100, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.APIMaxConnections, cfg.LndTowerMaxConnections = c.api, c.lnd
			if c.lndOn {
				cfg.LndTowerBind = "127.0.0.1:9911"
			}
			api, lnd := connBudgets(&cfg, c.nofile)
			if api != c.wantAPI || lnd != c.wantLnd {
				t.Fatalf("connBudgets(api %d, lnd %d, nofile %d) = %d, %d; want %d, %d", c.api, c.lnd, c.nofile, api, lnd, c.wantAPI, c.wantLnd)
			}
			if got := apiConnBudget(&cfg, c.nofile); got != api {
				t.Fatalf("apiConnBudget = %d, want connBudgets' %d", got, api)
			}
		})
	}
	// Whatever is asked, both ports' connections fit beside the reserve.
	cfg := config.Default()
	cfg.LndTowerBind = "127.0.0.1:9911"
	for _, nofile := range []int{fdReserve + 2, 1024, 4096, 65536} {
		for _, a := range []uint32{0, 1, 100, 8192, 1 << 20} {
			for _, l := range []uint32{0, 1, 32, 1024, 1 << 20} {
				cfg.APIMaxConnections, cfg.LndTowerMaxConnections = a, l
				api, lnd := connBudgets(&cfg, nofile)
				if api < 1 || lnd < 1 || api+lnd > nofile-fdReserve {
					t.Errorf("nofile %d, asked %d and %d: %d + %d", nofile, a, l, api, lnd)
				}
				if (a != 0 && api > int(a)) || (l != 0 && lnd > int(l)) {
					t.Errorf("nofile %d, asked %d and %d: got more, %d and %d", nofile, a, l, api, lnd)
				}
			}
		}
	}
}

// The lnd front end is given lnd_tower_max_connections as fitted, with one warn line; the
// configuration read is left as it was.
func TestFitFrontEndConns(t *testing.T) {
	cfg := config.Default()
	cfg.LndTowerBind = "127.0.0.1:9911"
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	fitted := fitFrontEndConns(&cfg, 1300, log)
	if fitted.LndTowerMaxConnections != 522 || cfg.LndTowerMaxConnections != config.DefaultLndTowerMaxConnections {
		t.Fatalf("fitted %d, read %d; want 522 and the default", fitted.LndTowerMaxConnections, cfg.LndTowerMaxConnections)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="lnd_tower_max_connections lowered to fit the open files limit" configured=1024 used=522 nofile=1300`) {
		t.Fatalf("no warn line with the figures: %q", logs.String())
	}
	logs.Reset()
	if got := fitFrontEndConns(&cfg, 1<<20, log); got != &cfg || logs.Len() != 0 {
		t.Fatalf("room for all: %+v, logs %q", got.LndTowerMaxConnections, logs.String())
	}
}
