package main

import (
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
)

// admission turns the registration keys into the gatekeeper's policy: the allowlist in
// allowlist mode; the stored-bytes cap in open mode. Both are read from the store on every
// registration, so on a shared database an admin change through any instance, and every
// instance's writes, count at once on all of them.
func admission(cfg *config.Config, db store.Engine) gatekeeper.Admission {
	if cfg.Registration == config.RegistrationAllowlist {
		return gatekeeper.Admission{Allowlist: db.UserAllowed}
	}
	return gatekeeper.Admission{MaxStoredBytes: int64(min(cfg.MaxStoredBytes, 1<<62)), StoredBytes: db.StoredBytes}
}
