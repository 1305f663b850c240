package main

import (
	"log/slog"

	"github.com/teos-go/teos/internal/config"
)

// connBudgets fits the connections served at once by the public API (api_max_connections,
// shared with the onion listener) and, with lnd_tower_bind, by the lnd port
// (lnd_tower_max_connections) to the open files limit nofile (<= 0: unknown), fdReserve kept
// for the rest: each connection is a file descriptor. 0 (no cap) asks for all the room. When
// both do not fit, the room is shared as evenly as they ask: a port asking for less than
// half keeps what it asked and the other gets the rest, so a small lnd cap is never cut for
// the public API's larger one, nor the other way round.
func connBudgets(cfg *config.Config, nofile int) (api, lnd int) {
	api = int(cfg.APIMaxConnections)
	if cfg.LndTowerBind != "" {
		lnd = int(cfg.LndTowerMaxConnections)
	}
	if nofile <= 0 {
		return api, lnd
	}
	room := nofile - fdReserve
	if cfg.LndTowerBind == "" {
		if api == 0 || api > room {
			api = max(room, 1)
		}
		return api, 0
	}
	if room < 2 {
		// No room for both: one each, as the public API alone gets. Below, a room of 0 or
		// less would come out as caps of 0 or less, which the listeners read as no cap.
		return 1, 1
	}
	askAPI, askLnd := api, lnd
	if askAPI == 0 {
		askAPI = room
	}
	if askLnd == 0 {
		askLnd = room
	}
	if askAPI+askLnd <= room {
		return askAPI, askLnd
	}
	half := room / 2
	switch {
	case askLnd <= half:
		api, lnd = room-askLnd, askLnd
	case askAPI <= room-half:
		api, lnd = askAPI, room-askAPI
	default:
		api, lnd = room-half, half
	}
	return max(api, 1), max(lnd, 1)
}

// lndConnBudget is the lnd port's part of connBudgets (0 without lnd_tower_bind).
func lndConnBudget(cfg *config.Config, nofile int) int {
	_, lnd := connBudgets(cfg, nofile)
	return lnd
}

// fitFrontEndConns is cfg with lnd_tower_max_connections fitted to the open files limit
// (connBudgets), logging a warning if it had to be lowered; cfg itself is left as read.
func fitFrontEndConns(cfg *config.Config, nofile int, log *slog.Logger) *config.Config {
	lnd := lndConnBudget(cfg, nofile)
	if cfg.LndTowerBind == "" || lnd == int(cfg.LndTowerMaxConnections) {
		return cfg
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Warn("lnd_tower_max_connections lowered to fit the open files limit", "configured", cfg.LndTowerMaxConnections,
		"used", lnd, "nofile", nofile, "api_max_connections", cfg.APIMaxConnections)
	fitted := *cfg
	fitted.LndTowerMaxConnections = uint32(lnd)
	return &fitted
}
