package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
)

// TestShutdownUnderLoad: plugin-like adds (a fresh connection each) keep arriving while teosd
// gets SIGTERM on a healthy tower. Every add teosd read is served to completion with its receipt
// (none answered "stopping": nothing is held), every one accepted is kept over the restart, and
// none is filed invalid. Adds that reach teosd's listen backlog
// (or the connection caps' hand-off) as it closes are reset, which the plugin's first send
// loses: the test logs how many and when, as the width of that window (docs/PROTOCOL.md §15.4).
// TEOS_SHUTDOWN_LOAD_RUNS repeats it.
func TestShutdownUnderLoad(t *testing.T) {
	runs := 1
	if v, err := strconv.Atoi(os.Getenv("TEOS_SHUTDOWN_LOAD_RUNS")); err == nil && v > 0 {
		runs = v
	}
	node := startNode(t)
	for run := range runs {
		tw := newTower(t, node, "")
		tw.start()
		alice := newUser(t)
		alice.register(t, tw)

		type outcome struct {
			a          teos.Appointment
			v          pluginVerdict
			err        error
			start, end time.Duration // from the SIGTERM
		}
		const senders = 8
		var (
			mu       sync.Mutex
			outcomes []outcome
			wg       sync.WaitGroup
			sigAt    time.Time
			sigMu    sync.Mutex
		)
		since := func(ts time.Time) time.Duration {
			sigMu.Lock()
			defer sigMu.Unlock()
			if sigAt.IsZero() {
				return -time.Hour // before the signal; not reported
			}
			return ts.Sub(sigAt)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		stopSending := make(chan struct{})
		for range senders {
			wg.Go(func() {
				for {
					select {
					case <-stopSending:
						return
					default:
					}
					a := randomAppointment(t, 100)
					begin := time.Now()
					req := alice.addRequest(a)
					b, _ := json.Marshal(req)
					body, err := pluginPost(ctx, tw.apiURL, "/add_appointment", b)
					v := pluginDecide(tw.id, req["signature"].(string), body, err)
					end := time.Now()
					mu.Lock()
					outcomes = append(outcomes, outcome{a, v, err, since(begin), since(end)})
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Second)
		sigMu.Lock()
		sigAt = time.Now()
		sigMu.Unlock()
		_ = tw.cmd.Process.Signal(syscall.SIGTERM)
		<-tw.done
		exited := time.Since(sigAt)
		time.Sleep(100 * time.Millisecond) // refused connections meanwhile
		close(stopSending)
		wg.Wait()
		cancel()
		if err := tw.exitErr(); err != nil {
			t.Fatalf("teosd exit: %v", err)
		}

		counts := map[pluginVerdict]int{}
		var accepted []teos.Appointment
		for _, o := range outcomes {
			counts[o.v]++
			switch {
			case o.v == verdictAccepted:
				accepted = append(accepted, o.a)
			case o.v == verdictSubscription:
				// Nothing is held on a healthy tower: an add it read is served to completion.
				t.Errorf("run %d: add answered 'stopping' by a healthy tower (sent at %v from SIGTERM)", run, o.start)
			case o.v == verdictDropped:
				t.Logf("run %d: add lost on the first send: sent at %+v, failed at %+v from SIGTERM (teosd exited at %v): %v",
					run, o.start.Round(time.Microsecond), o.end.Round(time.Microsecond), exited.Round(time.Microsecond), o.err)
			case !o.v.keptPending():
				t.Errorf("run %d: add filed %s at shutdown (sent at %v from SIGTERM)", run, o.v, o.start)
			}
		}
		t.Logf("run %d: %d adds, verdicts %v; teosd exited %v after SIGTERM", run, len(outcomes), counts, exited.Round(time.Microsecond))

		tw.start()
		sub := alice.subscriptionOK(t, tw)
		have := make(map[string]bool, len(sub.Locators))
		for _, l := range sub.Locators {
			have[l] = true
		}
		for _, a := range accepted {
			if !have[a.Locator.String()] {
				t.Errorf("run %d: appointment %s acknowledged at shutdown, missing after the restart", run, a.Locator)
			}
		}
		tw.stop()
	}
}
