package main

import (
	"net/http"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/api/httpapi"
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

// limitRegistrations applies registration_rate in open mode (the allowlist already decides
// who registers in allowlist mode), per client as the trusted proxies name it.
func limitRegistrations(api http.Handler, cfg *config.Config, proxies clientaddr.Proxies) http.Handler {
	if cfg.Registration != config.RegistrationOpen {
		return api
	}
	return httpapi.LimitRegistrations(api, cfg.RegistrationRate, nil, func(r *http.Request) string {
		return proxies.Client(r).Addr.String()
	})
}
