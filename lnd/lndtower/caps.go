package lndtower

import (
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/store"
)

// applyCaps sets the server's caps from the operator's keys. max_stored_bytes and
// registration_rate are the teos API's (a session is lnd's registration, admission.go);
// registration_rate applies whatever registration says, since no allowlist can decide here:
// lnd's client opens every session with a fresh key derived for it, which names no node. Under
// teosd its budget is the public API's (Open: Env.Registrations).
// The connection caps are the lnd port's own keys.
func (s *Server) applyCaps(cfg *config.Config, db store.Engine) {
	s.MaxConnections = int(cfg.LndTowerMaxConnections)
	s.MaxConnectionsPerAddress = int(cfg.LndTowerMaxConnectionsPerAddress)
	s.MaxStoredBytes = int64(min(cfg.MaxStoredBytes, 1<<62))
	s.StoredBytes = db.StoredBytes
	s.SessionsPerMinute = cfg.RegistrationRate
}
