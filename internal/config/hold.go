package config

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadHold means api_hold_timeout is out of range.
var ErrBadHold = errors.New("api_hold_timeout out of range")

// DefaultAPIHoldTimeout rides out a bitcoind restart (seconds).
const DefaultAPIHoldTimeout = 45

// MaxAPIHoldTimeout bounds api_hold_timeout: the HTTP server's timeouts sit above it.
const MaxAPIHoldTimeout = 600

// HoldTimeout is api_hold_timeout as a duration.
func (c *Config) HoldTimeout() time.Duration {
	return time.Duration(c.APIHoldTimeout) * time.Second
}

// validateHold checks api_hold_timeout.
func (c *Config) validateHold() error {
	if c.APIHoldTimeout > MaxAPIHoldTimeout {
		return fmt.Errorf("api_hold_timeout %d s is over %d s: %w", c.APIHoldTimeout, MaxAPIHoldTimeout, ErrBadHold)
	}
	return nil
}
