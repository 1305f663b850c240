package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Defaults of the public edge's connection caps. An idle connection costs a Go server
// about 8-20 KiB (its goroutine and buffers; measured with 4,000 connections) and one file
// descriptor, so 8192 is ~160 MiB at worst; one address may hold 64, so it takes 128
// addresses, not one, to fill the server.
const (
	DefaultAPIMaxConnections           = 8192
	DefaultAPIMaxConnectionsPerAddress = 64
)

// Defaults of the parked connections: past its cap, an address's connections are kept
// accepted but unread (a file descriptor and a few KiB of kernel memory each, no
// goroutine) until one of its places frees, so a client that re-opens what the server
// closes has nothing to re-open. 16384 is ~64 MiB of kernel memory at worst; teosd lowers
// it to fit the open files limit. One address may hold a quarter of it.
const (
	DefaultAPIMaxParkedConnections           = 16384
	DefaultAPIMaxParkedConnectionsPerAddress = 4096
)

// ErrBadTrustedProxy means an api_trusted_proxies entry is neither an address nor a CIDR.
var ErrBadTrustedProxy = errors.New("api_trusted_proxies entries must be IP addresses or CIDR prefixes")

// validateEdge checks the public edge's keys.
func (c *Config) validateEdge() []error {
	var errs []error
	for _, p := range c.APITrustedProxies.List() {
		var err error
		if strings.Contains(p, "/") {
			_, err = netip.ParsePrefix(p)
		} else {
			_, err = netip.ParseAddr(p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("api_trusted_proxies %q: %w", p, ErrBadTrustedProxy))
		}
	}
	return errs
}

// AddrList is a list of addresses or CIDR prefixes: a TOML array of strings in the file,
// comma-separated on the command line (the flag replaces the file's list). It is kept
// joined by commas so Config stays comparable.
type AddrList string

// List returns the entries.
func (v AddrList) List() []string {
	var out []string
	for _, e := range strings.Split(string(v), ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// String is the comma-separated list.
func (v *AddrList) String() string { return string(*v) }

// Set reads a comma-separated list (flag.Value).
func (v *AddrList) Set(s string) error {
	*v = AddrList(strings.Join(AddrList(s).List(), ","))
	return nil
}

// UnmarshalTOML reads an array of strings (or one string).
func (v *AddrList) UnmarshalTOML(data any) error {
	switch d := data.(type) {
	case string:
		return v.Set(d)
	case []any:
		parts := make([]string, 0, len(d))
		for _, e := range d {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("api_trusted_proxies: %v is not a string", e)
			}
			if strings.Contains(s, ",") {
				return fmt.Errorf("api_trusted_proxies: %q: one address or prefix per entry", s)
			}
			parts = append(parts, s)
		}
		return v.Set(strings.Join(parts, ","))
	}
	return fmt.Errorf("api_trusted_proxies: want a list of strings, got %T", data)
}
