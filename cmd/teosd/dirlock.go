package main

import (
	"errors"
	"fmt"
	"io/fs"

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
func lockNetworkDir(cfg *config.Config) (release func(), err error) {
	if cfg.DatabaseURL != "" {
		return func() {}, nil
	}
	release, err = lockDir(cfg.NetworkDir())
	if errors.Is(err, errDirLocked) {
		return nil, fmt.Errorf("%s is in use by another teosd (is another teosd running with this data dir?)", cfg.NetworkDir())
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // not yet: lock it once created
	}
	return release, err
}
