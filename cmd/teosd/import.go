package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/rustimport"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

const (
	storeFileName    = "teos.db"      // teos-go's store in the network dir
	rustTeosFileName = "teos_db.sql3" // rust-teos's database in the same dir

	// importPauseEnv is a test hook: when set, an import stops once the users and appointments
	// are in its temporary file and waits there to be killed.
	importPauseEnv = "TEOSD_TEST_IMPORT_PAUSE"

	// maxStaleDepth bounds the walk from a reorganised-out last block back to the best chain.
	maxStaleDepth = 1000
)

// importRustTeos imports a rust-teos database into a new store before teosd opens it: the
// file given with --importrustteos, or else rust-teos's own file in the network dir when
// teos-go has no store there yet. Nothing is written unless the import completes.
func importRustTeos(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	dest := filepath.Join(cfg.NetworkDir(), storeFileName)
	src := cfg.ImportRustTeos
	if src == "" {
		src = filepath.Join(cfg.NetworkDir(), rustTeosFileName)
		if ok, err := exists(src); !ok || err != nil {
			return err
		}
		if ok, err := exists(dest); err != nil {
			return err
		} else if ok && cfg.DatabaseURL == "" {
			if imported, err := storeIsRustTeos(ctx, dest, src, log); imported || err != nil {
				return err
			}
			// An empty teos.db (a first start that stopped before it stored anything)
			// is replaced by the import.
		} else if ok {
			return nil // database_url: teos.db is refused if it holds data (shared.go)
		}
		if cfg.DatabaseURL != "" {
			// A tower on PostgreSQL never reads teos.db: it would answer rust-teos's users
			// with a new tower key, and their clients would drop it for good.
			return fmt.Errorf("found rust-teos's database %s, but database_url is set and the import "+
				"cannot write to PostgreSQL: start without database_url to import it into teos.db, or move "+
				"the file away to start a new tower on PostgreSQL", src)
		}
	} else {
		if cfg.DatabaseURL != "" {
			return errors.New("--importrustteos imports into teos.db, which a tower on PostgreSQL " +
				"(database_url) does not read: import without database_url")
		}
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("--importrustteos: %w", err)
		}
		if err := checkNoData(dest); err != nil {
			return err
		}
	}
	if err := portsFree(cfg); err != nil {
		return err
	}
	btc, err := connectBitcoind(ctx, cfg, log, nil) // only for the last block's height
	if err != nil {
		return err
	}
	defer btc.Close()

	log.Info("importing rust-teos database", "path", src)
	var pause func(context.Context) error
	if os.Getenv(importPauseEnv) != "" {
		pause = func(ctx context.Context) error {
			log.Warn("import paused (" + importPauseEnv + " is set)")
			<-ctx.Done()
			return ctx.Err()
		}
	}
	sum, err := rustimport.Import(ctx, rustimport.Config{
		Source:      src,
		Dest:        dest,
		BlockHeight: func(ctx context.Context, h chainhash.Hash) (uint32, error) { return blockHeight(ctx, btc, h) },
		Paused:      pause,
	})
	if err != nil {
		return fmt.Errorf("import rust-teos database %s: %w", src, err)
	}
	key, _ := btcec.PrivKeyFromBytes(sum.TowerKey[:])
	attrs := []any{"path", src, "tower_id", teos.UserIDFromPubKey(key.PubKey()), "keys", sum.Keys, "users", sum.Users,
		"appointments", sum.Appointments, "trackers", sum.Trackers}
	if sum.LastBlock != nil {
		attrs = append(attrs, "last_block", sum.LastBlock, "height", sum.Height)
	}
	log.Info("imported rust-teos database", attrs...)
	return nil
}

// storeIsRustTeos tells whether the store at dest is the tower of rust-teos's database at src
// (imported from it earlier: it holds rust-teos's tower key), or empty, to be imported into.
// A store with another tower key was made by a teosd started before rust-teos's database was
// moved in: serving it would answer rust-teos's users with a key their clients do not know,
// so the start is refused. When rust-teos's key cannot be read, that is only logged.
func storeIsRustTeos(ctx context.Context, dest, src string, log *slog.Logger) (bool, error) {
	// A teos.db that cannot be read here (newer, damaged) is left to the store's open, which
	// says why.
	c, err := store.Inspect(dest)
	if err != nil {
		return true, nil
	}
	if c.Empty() {
		return false, nil
	}
	keys, err := store.InspectTowerKeys(dest)
	if err != nil {
		return true, nil
	}
	rustKey, err := rustimport.TowerKey(ctx, src)
	if err != nil {
		log.Warn("rust-teos's database is beside teos.db but its tower key cannot be read; not checking that teos.db is that tower",
			"path", src, "err", err)
		return true, nil
	}
	for _, k := range keys {
		if k == rustKey {
			return true, nil
		}
	}
	rust, _ := btcec.PrivKeyFromBytes(rustKey[:])
	own := "none"
	if len(keys) > 0 {
		k, _ := btcec.PrivKeyFromBytes(keys[len(keys)-1][:])
		own = teos.UserIDFromPubKey(k.PubKey()).String()
	}
	return false, fmt.Errorf("%s (tower id %s) is not the tower of rust-teos's database %s beside it (tower id %s): "+
		"a teosd started before that file was there made it, and rust-teos's users would find another tower key. "+
		"Move %s away to import rust-teos's database, or move %s away to keep this tower",
		dest, own, src, teos.UserIDFromPubKey(rust.PubKey()), storeFileName, rustTeosFileName)
}

// portsFree refuses to import while rust-teos (same teos.toml, same ports) still runs: its
// database would go on changing after the import read it.
func portsFree(cfg *config.Config) error {
	for _, p := range []struct {
		what, host string
		port       uint16
	}{{"api_port", cfg.APIBind, cfg.APIPort}, {"rpc_port", cfg.RPCBind, cfg.RPCPort}} {
		addr := net.JoinHostPort(p.host, strconv.Itoa(int(p.port)))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("not importing the rust-teos database: %s %s is in use (stop rust-teos first): %w", p.what, addr, err)
		}
		l.Close()
	}
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// checkNoData refuses an explicit import over a store that holds anything: a tower key (teosd
// makes one on its first start), a user, an appointment or a processed block. It only reads
// the file (store.Inspect): a refused import leaves it byte-identical, whatever its layout.
func checkNoData(path string) error {
	if ok, err := exists(path); !ok || err != nil {
		return err
	}
	c, err := store.Inspect(path)
	if err != nil {
		return fmt.Errorf("--importrustteos: %w", err)
	}
	if !c.Empty() {
		return fmt.Errorf("--importrustteos: %s already has data (%d tower keys, %d users, %d appointments watched, %d trackers); "+
			"move it away to import, or start without --importrustteos", path, c.TowerKeys, c.Users, c.Appointments-c.Trackers, c.Trackers)
	}
	return nil
}

// blockHeight is the height of hash. rust-teos stores only the hash of its last block, which
// may since have been reorganised out; btcd gives no height for such a block, so it is counted
// from the block's first ancestor on the best chain.
func blockHeight(ctx context.Context, btc *bitcoind.Client, hash chainhash.Hash) (uint32, error) {
	for depth := uint32(0); depth <= maxStaleDepth; depth++ {
		h, err := btc.BlockHeight(ctx, hash)
		if err == nil {
			return h + depth, nil
		}
		hdr, herr := btc.BlockHeader(ctx, hash)
		if herr != nil {
			if depth == 0 {
				return 0, fmt.Errorf("%w (is bitcoind on the chain rust-teos used?)", err)
			}
			return 0, herr
		}
		hash = hdr.PrevBlock
	}
	return 0, fmt.Errorf("more than %d blocks off bitcoind's best chain", maxStaleDepth)
}
