package bitcoind

import (
	"context"
	"errors"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// A penalty is built and signed by the user, who chose its fee: the tower must broadcast it
// whatever fee rate it pays (docs/PROTOCOL.md 8.4). Nodes cap the fee rate of
// sendrawtransaction unless told otherwise, and take that second argument in different forms:
//
//	bitcoind >= 0.19   maxfeerate, BTC/kvB, default 0.10; 0 accepts any fee rate. A bool is
//	                   refused: -8 (0.19, 0.20) or -3 (later type checks).
//	bitcoind <  0.19   allowhighfees, a bool, default false; a number is refused with -3.
//	btcd               either a bool or a number (btcjson.AllowHighFeesOrMaxFeeRate), and
//	                   ignores it: btcd caps no fee rate. btcd before v0.22 took only the bool and
//	                   answered -32602 to a number.
//
// The client sends maxfeerate 0 first; a parameter error (never an answer about the
// transaction) makes it try allowhighfees true, and it keeps whichever form the node took.
type sendForm int32

const (
	sendMaxFeeRate    sendForm = iota // [hex, 0]
	sendAllowHighFees                 // [hex, true]
	sendHexOnly                       // [hex]: the node's default cap; a last resort, never kept
)

func (f sendForm) params(txHex string) []any {
	switch f {
	case sendMaxFeeRate:
		return []any{txHex, 0}
	case sendAllowHighFees:
		return []any{txHex, true}
	}
	return []any{txHex}
}

func (f sendForm) String() string {
	switch f {
	case sendMaxFeeRate:
		return "maxfeerate 0"
	case sendAllowHighFees:
		return "allowhighfees true"
	}
	return "no fee argument"
}

// isParamError reports whether err is the node refusing the form of the fee argument: a
// wrong type (-3), an invalid parameter (-8), or JSON-RPC invalid params (-32602, btcd).
// sendrawtransaction answers about the transaction itself with -22, -25, -26 or -27.
func isParamError(err error) bool {
	var rpcErr *RPCError
	if !errors.As(err, &rpcErr) {
		return false
	}
	switch rpcErr.Code {
	case CodeTypeError, CodeInvalidParameter, CodeInvalidParams:
		return true
	}
	return false
}

// sendRaw sends txHex with the form the node last took, then the other one, then with no
// fee argument, moving on only when the node refuses the form itself.
func (c *Client) sendRaw(ctx context.Context, txHex string) (chainhash.Hash, error) {
	first := sendForm(c.sendForm.Load())
	order := []sendForm{first, 1 - first, sendHexOnly} // first is one of the two kept forms
	var err error
	for _, f := range order {
		var txid chainhash.Hash
		txid, err = c.hashCall(ctx, "sendrawtransaction", f.params(txHex)...)
		if !isParamError(err) {
			if f != first && f != sendHexOnly && c.sendForm.CompareAndSwap(int32(first), int32(f)) {
				c.reach.log.Info("bitcoind takes sendrawtransaction's fee argument as "+f.String(), "refused", first.String())
			}
			if f == sendHexOnly {
				c.reach.log.Warn("bitcoind refused both forms of sendrawtransaction's fee argument: "+
					"sent without one, so its default fee rate cap applies", "err", err)
			}
			return txid, err
		}
	}
	return chainhash.Hash{}, err
}
