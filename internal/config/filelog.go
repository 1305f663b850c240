package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// LogFile logs the start-up line naming the teos.toml teosd looked for, as rust-teos logs
// its "Config file:" line: an operator whose file is not where teosd looks (another data dir,
// another user's home under systemd) sees where it looked before any error it causes.
// A file that exists but cannot be read or parsed is reported by Load's warnings.
func (c *Config) LogFile(log *slog.Logger) {
	log.Info(c.fileLog())
}

func (c *Config) fileLog() (msg string, path slog.Attr) {
	file := c.ConfigPath()
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return "config file not found, using defaults and flags", slog.String("path", file)
	}
	return "config file", slog.String("path", file)
}
