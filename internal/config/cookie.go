package config

import (
	"fmt"
	"os"
	"strings"
)

// ReadCookie reads a bitcoind .cookie file ("user:password", ~ expanded).
// The password may itself contain ':'; trailing newlines are ignored.
func ReadCookie(path string) (user, pass string, err error) {
	full, err := ExpandHome(path)
	if err != nil {
		return "", "", fmt.Errorf("cookie file: %w", err)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return "", "", fmt.Errorf("read cookie file: %w", err)
	}
	user, pass, ok := strings.Cut(strings.TrimRight(string(data), "\r\n"), ":")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%s: no ':' separator: %w", full, ErrBadCookie)
	case user == "":
		return "", "", fmt.Errorf("%s: empty user: %w", full, ErrBadCookie)
	case pass == "":
		return "", "", fmt.Errorf("%s: empty password: %w", full, ErrBadCookie)
	}
	return user, pass, nil
}
