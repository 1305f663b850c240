package bitcoind

import "context"

// SyncState is how far the node is with the chain, from getblockchaininfo.
type SyncState struct {
	// InitialDownload is bitcoind's initialblockdownload: the node is still catching up
	// with the network (always false on btcd, which does not report it).
	InitialDownload bool
	Blocks, Headers int64
	// Progress is bitcoind's verificationprogress, 0 to 1 (0 on btcd).
	Progress float64
}

// Sync reports whether the node is still in initial block download, and how far it is.
func (c *Client) Sync(ctx context.Context) (SyncState, error) {
	var info struct {
		Blocks   int64   `json:"blocks"`
		Headers  int64   `json:"headers"`
		IBD      bool    `json:"initialblockdownload"`
		Progress float64 `json:"verificationprogress"`
	}
	if err := c.call(ctx, &info, "getblockchaininfo"); err != nil {
		return SyncState{}, err
	}
	return SyncState{InitialDownload: info.IBD, Blocks: info.Blocks, Headers: info.Headers, Progress: info.Progress}, nil
}
