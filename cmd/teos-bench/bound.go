package main

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// bound is the crypto floor of one add_appointment on this machine: the tower recovers the
// user from the request's signature and signs a receipt, whatever else it does.
type bound struct {
	CostMicros     float64 `json:"recover_plus_sign_us"` // on one goroutine
	IdealPerSec    float64 `json:"ideal_per_sec"`        // NumCPU / CostMicros
	ParallelPerSec float64 `json:"parallel_per_sec"`     // measured with NumCPU goroutines
}

type boundInput struct {
	msg, sig string
}

// measureBound spends about d on one goroutine, then about d on every core; nil if the
// crypto failed.
func measureBound(d time.Duration) *bound {
	user, _ := btcec.NewPrivateKey()
	tower, _ := btcec.NewPrivateKey()
	inputs := make([]boundInput, 64)
	for i := range inputs {
		a := teos.Appointment{EncryptedBlob: make([]byte, 500), ToSelfDelay: uint32(i)}
		a.Locator[0] = byte(i)
		inputs[i] = boundInput{msg: string(a.SignedBytes()), sig: wtcrypto.SignMessage(a.SignedBytes(), user)}
	}
	var failed atomic.Bool // recovering our own signatures cannot fail; if it does, the figure is void
	once := func(i int) {
		in := inputs[i%len(inputs)]
		if _, err := wtcrypto.RecoverUserID([]byte(in.msg), in.sig); err != nil {
			failed.Store(true)
		}
		_ = wtcrypto.SignMessage(teos.AppointmentReceiptBytes(in.sig, 100), tower)
	}

	n := 0
	start := time.Now()
	for time.Since(start) < d {
		once(n)
		n++
	}
	single := time.Since(start)

	cores := runtime.NumCPU()
	var total atomic.Int64
	var wg sync.WaitGroup
	start = time.Now()
	for w := range cores {
		wg.Go(func() {
			for i := w; time.Since(start) < d; i++ {
				once(i)
				total.Add(1)
			}
		})
	}
	wg.Wait()
	parallel := time.Since(start)

	if failed.Load() {
		return nil
	}
	cost := float64(single.Nanoseconds()) / float64(n) / 1e3
	return &bound{CostMicros: cost, IdealPerSec: float64(cores) * 1e6 / cost,
		ParallelPerSec: float64(total.Load()) / parallel.Seconds()}
}
