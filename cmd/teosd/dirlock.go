package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/teos-go/teos/internal/config"
)

var errDirLocked = errors.New("locked")

// lockNetworkDir makes this teosd the only one using <datadir>/<network> with the embedded
// store, from before the rust-teos import until it exits. The store's file lock alone does not
// cover the import: two teosd importing at once would each rename a new teos.db into place,
// and the first, already running on the file the second replaced, would write to a file
// without a name, every acknowledged appointment lost at the next start. A network dir that
// does not exist yet is locked once created (an import into it creates it). Towers sharing
// PostgreSQL (database_url) may share a data dir, and are not locked.
// release is nil, with no error, when the network dir does not exist yet.
// A file system that cannot lock a directory (NFS refuses an exclusive lock on a read-only
// descriptor) is logged and left unlocked: the store's own file lock still stops a second teosd.
func lockNetworkDir(cfg *config.Config, log *slog.Logger) (release func(), err error) {
	if cfg.DatabaseURL != "" {
		return func() {}, nil
	}
	release, err = lockDir(cfg.NetworkDir())
	switch {
	case errors.Is(err, errDirLocked):
		return nil, fmt.Errorf("%s is in use by another teosd (is another teosd running with this data dir?)", cfg.NetworkDir())
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil // not yet: lock it once created
	case err != nil:
		log.Warn("cannot lock the data dir; only the store's own lock keeps a second teosd out", "dir", cfg.NetworkDir(), "err", err)
		return func() {}, nil
	}
	return release, nil
}
