package lndtower

import (
	"encoding/hex"
	"net"
	"sync/atomic"

	"github.com/teos-go/teos/internal/frontend"
)

// counter is what the info needs of the store (DB.Counts), whichever engine keeps the records.
type counter interface {
	Counts() (sessions, updates int, err error)
}

// newInfo returns the front end's get_tower_info hook: the address lnd users give
// `lncli wtclient add` (<tower_id>@host:port: the bound listener once open, lnd_tower_bind
// before) and the stored counts.
func newInfo(srv *Server, db counter, justiceTxs *atomic.Uint64) func() (frontend.Info, error) {
	var bound atomic.Pointer[string]
	ready := srv.Ready
	srv.Ready = func(addr net.Addr) {
		a := addr.String()
		bound.Store(&a)
		if ready != nil {
			ready(addr)
		}
	}
	id := hex.EncodeToString(srv.Key.PubKey().SerializeCompressed())
	return func() (frontend.Info, error) {
		addr := srv.Bind
		if a := bound.Load(); a != nil {
			addr = *a
		}
		sessions, updates, err := db.Counts()
		if err != nil {
			return frontend.Info{}, err
		}
		return frontend.Info{
			Addresses:    []string{id + "@" + addr},
			Sessions:     uint64(sessions),
			StateUpdates: uint64(updates),
			JusticeTxs:   justiceTxs.Load(),
		}, nil
	}
}
