package main

import (
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
)

// admission turns the registration keys into the gatekeeper's policy: the allowlist in
// allowlist mode; the stored-bytes cap in open mode.
func admission(cfg *config.Config, db *store.Store) gatekeeper.Admission {
	if cfg.Registration == config.RegistrationAllowlist {
		return gatekeeper.Admission{Allowlist: db.UserAllowed}
	}
	return gatekeeper.Admission{MaxStoredBytes: int64(min(cfg.MaxStoredBytes, 1<<62)), StoredBytes: db.StoredBytes}
}
