package config

import "fmt"

// Values of registration (teos-go extension).
const (
	// RegistrationOpen lets anyone register, as rust-teos does.
	RegistrationOpen = "open"
	// RegistrationAllowlist lets only the user ids the operator added register or renew.
	RegistrationAllowlist = "allowlist"
)

func (c *Config) validateRegistration() []error {
	switch c.Registration {
	case RegistrationOpen, RegistrationAllowlist:
		return nil
	default:
		return []error{fmt.Errorf("%w, got %q", ErrBadRegistration, c.Registration)}
	}
}
