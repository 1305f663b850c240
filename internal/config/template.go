package config

import _ "embed"

// Template is a commented teos.toml holding every key at its default;
// teosd writes it into a new data dir.
//
//go:embed teos.toml.example
var Template string
