package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"

	"github.com/teos-go/teos/internal/btcdtest"
)

// chanKind is a channel type: the lnd flags both nodes need, the openchannel flags, and the
// commitment_type lncli then reports.
type chanKind struct {
	lndArgs, openArgs []string
	commitType        string
	policy            string // the wtclient's policy type for its sessions
}

var (
	anchors = chanKind{commitType: "ANCHORS", policy: "ANCHOR"}
	// lnd's production taproot channels (feature bits 80/81) must be private; lncli names
	// the type TAPROOT (7, also called SIMPLE_TAPROOT_FINAL; the staging type is 5).
	taproot = chanKind{
		lndArgs:    []string{"--protocol.simple-taproot-chans"},
		openArgs:   []string{"--channel_type", "taproot", "--private"},
		commitType: "TAPROOT",
		policy:     "TAPROOT", // blob type taproot-final for these channels
	}
)

// openChannel funds alice with coinbase f.next, opens a 2,000,000 sat channel of kind k from
// alice to bob and mines until alice sees it active. It returns the channel point,
// "txid:index".
func openChannel(t testing.TB, node *btcdtest.Node, f *funder, alice, bob *lndNode, k chanKind) string {
	t.Helper()
	f.send(t, alice.newAddress(t, node), 10*btcutil.SatoshiPerBitcoin)
	node.Generate(t, 1)
	waitFor(t, 60*time.Second, "alice's confirmed balance", func() (bool, error) {
		var b struct {
			Confirmed string `json:"confirmed_balance"`
		}
		if err := lncliJSON(t, alice, &b, "walletbalance"); err != nil {
			return false, err
		}
		return b.Confirmed != "" && b.Confirmed != "0", nil
	})
	lncli(t, alice, nil, "connect", bob.pubkey+"@"+bob.p2p)
	lncli(t, alice, nil, append([]string{"openchannel", "--node_key", bob.pubkey, "--local_amt", "2000000"}, k.openArgs...)...)
	var chanPoint string
	waitFor(t, 120*time.Second, "an active channel", func() (bool, error) {
		node.Generate(t, 1)
		var lc struct {
			Channels []struct {
				Active       bool   `json:"active"`
				ChannelPoint string `json:"channel_point"`
				CommitType   string `json:"commitment_type"`
			} `json:"channels"`
		}
		if err := lncliJSON(t, alice, &lc, "listchannels"); err != nil {
			return false, err
		}
		if len(lc.Channels) == 1 && lc.Channels[0].Active {
			if got := lc.Channels[0].CommitType; got != k.commitType {
				t.Fatalf("channel of type %s, want %s", got, k.commitType)
			}
			chanPoint = lc.Channels[0].ChannelPoint
			t.Logf("channel %s, %s", chanPoint, lc.Channels[0].CommitType)
			return true, nil
		}
		return false, nil
	})
	return chanPoint
}

// pay has alice pay an invoice of amt sat from bob over their channel.
func pay(t testing.TB, alice, bob *lndNode, amt int) {
	t.Helper()
	var inv struct {
		PaymentRequest string `json:"payment_request"`
	}
	// Right after the channel (re)activates the link may not forward yet: retry.
	waitFor(t, 60*time.Second, fmt.Sprintf("a payment of %d sat", amt), func() (bool, error) {
		lncli(t, bob, &inv, "addinvoice", "--amt", fmt.Sprint(amt))
		if err := lncliJSON(t, alice, nil, "payinvoice", "--force", "--json", inv.PaymentRequest); err != nil {
			time.Sleep(time.Second)
			return false, err
		}
		return true, nil
	})
}

// waitActive waits until alice's one channel is active.
func waitActive(t testing.TB, alice *lndNode) {
	t.Helper()
	waitFor(t, 120*time.Second, "the channel active again", func() (bool, error) {
		var lc struct {
			Channels []struct {
				Active bool `json:"active"`
			} `json:"channels"`
		}
		if err := lncliJSON(t, alice, &lc, "listchannels"); err != nil {
			return false, err
		}
		return len(lc.Channels) == 1 && lc.Channels[0].Active, nil
	})
}

// keepState stops bob, copies his channel.db (the state the cheater will keep) and starts him
// again with the channel active.
func keepState(t testing.TB, alice, bob *lndNode) []byte {
	t.Helper()
	bob.stop(t)
	old, err := os.ReadFile(bob.channelDB())
	if err != nil {
		t.Fatal(err)
	}
	bob.start(t)
	waitActive(t, alice)
	return old
}

// cheat stops both nodes, restores bob's kept channel.db and has him force-close the channel
// with that revoked state, then stops him. The revoked commitment is in the mempool, unmined;
// cheat returns its txid.
func cheat(t testing.TB, alice, bob *lndNode, old []byte, chanPoint string) string {
	t.Helper()
	// With alice online bob's lnd would learn from her reestablish that its state is old
	// (lnd's data-loss protection).
	alice.stop(t)
	bob.stop(t)
	if err := os.WriteFile(bob.channelDB(), old, 0o600); err != nil {
		t.Fatal(err)
	}
	bob.start(t)
	var closing struct {
		ClosingTxid string `json:"closing_txid"`
	}
	txid, idx, _ := strings.Cut(chanPoint, ":")
	lncli(t, bob, &closing, "closechannel", "--force", "--funding_txid", txid, "--output_index", idx)
	bob.stop(t) // the cheater need not stay
	return closing.ClosingTxid
}

// backupsOfPolicy counts the backups in alice's tower-client sessions of the given policy
// type (ANCHOR, TAPROOT), over all her towers.
func backupsOfPolicy(t testing.TB, alice *lndNode, policy string) int {
	t.Helper()
	var r struct {
		Towers []struct {
			SessionInfo []struct {
				PolicyType string `json:"policy_type"`
				Sessions   []struct {
					NumBackups int `json:"num_backups"`
				} `json:"sessions"`
			} `json:"session_info"`
		} `json:"towers"`
	}
	lncli(t, alice, &r, "wtclient", "towers", "--include_sessions")
	n := 0
	for _, tw := range r.Towers {
		for _, si := range tw.SessionInfo {
			if si.PolicyType == policy {
				for _, s := range si.Sessions {
					n += s.NumBackups
				}
			}
		}
	}
	return n
}
