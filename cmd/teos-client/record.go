package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/pkg/client"
)

// towerLockFile serializes every read-modify-write of tower.json across runs: tower.json
// itself is replaced by a rename, so it cannot carry the lock.
const towerLockFile = towerFile + ".lock"

// updateTower applies fn to the saved tower (nil if there is none) with the data dir's lock
// held, so two runs updating it at once (register and a --proxy being remembered, a
// misbehaving tower being flagged) never write back what the other replaced. fn returns the
// record to save, or nil to leave the file as it is.
func (a *app) updateTower(dir string, fn func(cur *savedTower) (*savedTower, error)) error {
	f, err := os.OpenFile(filepath.Join(dir, towerLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock saved tower: %w", err)
	}
	defer f.Close() // releases the lock
	if err := lockFileWait(f); err != nil {
		return err
	}
	cur, err := a.loadSaved(dir)
	if err != nil {
		return err
	}
	next, err := fn(cur)
	if err != nil || next == nil {
		return err
	}
	return saveTower(dir, next)
}

// misbehaviour is a tower that sent a receipt that does not verify, kept in tower.json by
// tower id: teos-client sends that tower nothing more (as the CLN plugin abandons a
// misbehaving tower) until the user runs clear_misbehaving.
type misbehaviour struct {
	URL    string                   `json:"url"`
	Since  string                   `json:"since"` // RFC 3339, UTC
	Reason string                   `json:"reason"`
	Proof  *client.MisbehaviorProof `json:"proof,omitempty"`
}

// sendingCommands give the tower something (a subscription to pay for, appointments,
// deletions): refused for a tower flagged misbehaving. Queries are still allowed.
var sendingCommands = map[string]bool{"register": true, "add_appointment": true, "upload": true, "delete": true, "delete_appointment": true}

// errFlagged is a command refused because its tower was flagged misbehaving.
type errFlagged struct {
	id string
	m  *misbehaviour
}

func (e *errFlagged) Error() string {
	return fmt.Sprintf("tower %s at %s is flagged misbehaving since %s (%s): nothing is sent to it; "+
		"run teos-client clear_misbehaving to trust it again", e.id, e.m.URL, e.m.Since, e.m.Reason)
}

func (e *errFlagged) Unwrap() error { return client.ErrMisbehaving }

// checkFlagged refuses a sending command to a tower flagged misbehaving.
func (a *app) checkFlagged(saved *savedTower, id string) error {
	if saved == nil || !sendingCommands[a.cmd] {
		return nil
	}
	if m := saved.Misbehaving[id]; m != nil {
		return &errFlagged{id, m}
	}
	return nil
}

// recordMisbehaviour keeps the misbehaviour the library found in this run in tower.json. A
// first registration whose receipt does not verify is not kept (as the CLN plugin): that is
// most likely a wrong --towerid, and the error says so already.
func (a *app) recordMisbehaviour() error {
	t := a.tower
	if t == nil {
		return nil
	}
	var me *client.MisbehaviorError
	if !errors.As(t.Misbehaving(), &me) {
		return nil
	}
	if a.cmd == "register" && !a.knownTower {
		return nil
	}
	id := t.ID().String()
	return a.updateTower(a.dir, func(cur *savedTower) (*savedTower, error) {
		if cur == nil {
			cur = &savedTower{}
		}
		if cur.Misbehaving[id] != nil {
			return nil, nil // the first proof is kept
		}
		if cur.Misbehaving == nil {
			cur.Misbehaving = map[string]*misbehaviour{}
		}
		cur.Misbehaving[id] = &misbehaviour{URL: t.URL(), Since: time.Now().UTC().Format(time.RFC3339), Reason: me.Reason, Proof: me.Proof}
		return cur, nil
	})
}

// clearMisbehaving forgets that the tower (--towerid, else the saved one) misbehaved.
func (a *app) clearMisbehaving(args []string) error {
	if len(args) != 0 {
		return usagef("clear_misbehaving takes no arguments")
	}
	dir, err := config.ExpandHome(a.dataDir)
	if err != nil {
		return err
	}
	saved, err := a.loadSaved(dir)
	if err != nil {
		return err
	}
	id := a.towerID
	if id == "" && saved != nil {
		id = saved.TowerID
	}
	if id == "" {
		return usagef("the tower id is unknown: pass --towerid")
	}
	parsed, err := parseTowerID(id)
	if err != nil {
		return err
	}
	id = parsed.String()
	var was *misbehaviour
	if saved != nil {
		err = a.updateTower(dir, func(cur *savedTower) (*savedTower, error) {
			if cur == nil || cur.Misbehaving[id] == nil {
				return nil, nil
			}
			was = cur.Misbehaving[id]
			delete(cur.Misbehaving, id)
			return cur, nil
		})
		if err != nil {
			return err
		}
	}
	return a.printJSON(struct {
		TowerID string        `json:"tower_id"`
		Cleared bool          `json:"cleared"`
		Was     *misbehaviour `json:"was,omitempty"`
	}{id, was != nil, was})
}
