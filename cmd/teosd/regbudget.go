package main

import (
	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/frontend"
)

// registrationBudget is registration_rate's budget per client address (nil: no rate), one for
// the process: the public API's registrations (open mode) and the front ends' (lnd's new
// sessions, in either mode) spend the same tokens, so an address gets registration_rate a
// minute across the tower's ports, not that much on each.
func registrationBudget(cfg *config.Config) *httpapi.RegistrationLimit {
	return httpapi.NewRegistrationLimit(cfg.RegistrationRate, nil)
}

// sharedBudget is regs for a front end: a nil interface, not a nil pointer, when there is no
// rate.
func sharedBudget(regs *httpapi.RegistrationLimit) frontend.RegistrationBudget {
	if regs == nil {
		return nil
	}
	return regs
}
