package gatekeeper

import (
	"context"

	"github.com/btcsuite/btcd/wire"
)

// BlockConnected moves the gatekeeper to height and deletes the users that are now outdated.
// It runs first among the block listeners, so the others only see live users.
func (g *Gatekeeper) BlockConnected(_ context.Context, _ *wire.MsgBlock, height uint32) error {
	g.height.Store(height)
	_, err := g.DeleteOutdatedUsers(height)
	return err
}

// BlockDisconnected steps the gatekeeper back below the disconnected block.
func (g *Gatekeeper) BlockDisconnected(_ context.Context, _ *wire.BlockHeader, height uint32) error {
	g.height.Store(height - 1)
	return nil
}
