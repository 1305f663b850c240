package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/durable"
)

var errDirLocked = errors.New("locked")

// netDir is <datadir>/<network>, created and, with the embedded store, locked by this teosd.
type netDir struct {
	release func()
	created []string // the directories this start created, deepest first
}

// lockNetworkDir creates <datadir>/<network> if it is missing (each new name flushed, so the
// store, keys and certificates created in it cannot vanish with it after a power loss) and makes
// this teosd the only one using it with the embedded store, from before the rust-teos import
// until it exits. The store's file lock alone does not cover the import: two teosd importing at
// once would each rename a new teos.db into place, and the first, already running on the file
// the second replaced, would write to a file without a name, every acknowledged appointment lost
// at the next start. The dir is created before it is locked so that this holds for an import
// into a data dir that has no network dir yet too. Towers sharing PostgreSQL (database_url) may
// share a data dir, and are not locked.
// A file system that cannot lock a directory (NFS refuses an exclusive lock on a read-only
// descriptor) is logged and left unlocked: the store's own file lock still stops a second teosd.
func lockNetworkDir(cfg *config.Config, log *slog.Logger) (*netDir, error) {
	nd := &netDir{release: func() {}}
	// A dir removed between its creation and the lock (another teosd's refused import removing
	// the dir it had created) is created again.
	for range 3 {
		created, err := durable.MkdirAll(cfg.NetworkDir(), 0o700)
		nd.created = append(created, nd.created...)
		if err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		if cfg.DatabaseURL != "" {
			return nd, nil
		}
		release, err := lockDir(cfg.NetworkDir())
		switch {
		case err == nil:
			nd.release = release
			return nd, nil
		case errors.Is(err, errDirLocked):
			return nil, fmt.Errorf("%s is in use by another teosd (is another teosd running with this data dir?)", cfg.NetworkDir())
		case errors.Is(err, fs.ErrNotExist):
			continue
		default:
			log.Warn("cannot lock the data dir; only the store's own lock keeps a second teosd out", "dir", cfg.NetworkDir(), "err", err)
			return nd, nil
		}
	}
	return nil, fmt.Errorf("%s keeps being removed while teosd starts", cfg.NetworkDir())
}

// removeCreated removes the directories this start created, if still empty: a refused import
// leaves the data dir as it found it. It runs before unlock.
func (nd *netDir) removeCreated() {
	for _, d := range nd.created {
		os.Remove(d) // removes only an empty dir
	}
}

// unlock lets another teosd use the dir; the last thing teosd does, after the store is closed.
func (nd *netDir) unlock() { nd.release() }
