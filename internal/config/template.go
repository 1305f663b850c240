package config

import _ "embed"

// Template is a commented teos.toml holding every key at its default (the
// README points operators to it; teosd does not write it anywhere).
//
//go:embed teos.toml.example
var Template string
