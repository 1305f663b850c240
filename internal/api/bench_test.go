package api_test

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

const (
	benchUsers   = 64
	benchBlobLen = 500 // a penalty transaction of a few hundred bytes, plus the tag
)

// Knobs for exploring where the add_appointment benchmarks saturate, e.g.
// go test -bench AddAppointment ./internal/api -args -clients=256
var (
	benchClients = flag.Int("clients", 64, "concurrent requests in flight in the add_appointment benchmarks")
)

// signedAdd is an add_appointment request signed ahead of time, so the client's signing
// stays out of the measurement.
type signedAdd struct {
	a    teos.Appointment
	sig  string
	body []byte // the HTTP request body
}

var (
	benchUserList = sync.OnceValue(func() []user {
		us := make([]user, benchUsers)
		for i := range us {
			us[i] = newUser(fmt.Sprint("bench ", i))
		}
		return us
	})
	poolMu sync.Mutex
	pool   []signedAdd // shared by every benchmark and round; only ever grows
)

// presigned returns at least n requests with distinct (user, locator) pairs, signing more
// in parallel when needed.
func presigned(n int) []signedAdd {
	poolMu.Lock()
	defer poolMu.Unlock()
	if len(pool) >= n {
		return pool
	}
	users := benchUserList()
	grown := make([]signedAdd, n)
	copy(grown, pool)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := len(pool) + w; i < n; i += workers {
				var loc teos.Locator
				binary.BigEndian.PutUint64(loc[:], uint64(i)*0x9e3779b97f4a7c15) // spread keys over the B+tree
				binary.BigEndian.PutUint64(loc[8:], uint64(i))
				blob := bytes.Repeat([]byte{byte(i)}, benchBlobLen)
				a := teos.Appointment{Locator: loc, EncryptedBlob: blob, ToSelfDelay: 42}
				sig := users[i%benchUsers].signAdd(a)
				grown[i] = signedAdd{a: a, sig: sig, body: []byte(addBody(a, sig))}
			}
		})
	}
	wg.Wait()
	pool = grown
	return pool
}

// registerBenchUsers registers every bench user at once, so they share one commit.
func registerBenchUsers(b *testing.B, gk *gatekeeper.Gatekeeper) {
	b.Helper()
	var wg sync.WaitGroup
	for _, u := range benchUserList() {
		wg.Go(func() {
			if _, err := gk.Register(u.id); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

// cryptoOnce does the request path's crypto for one appointment: recover the user from
// their signature, sign the receipt.
func cryptoOnce(r signedAdd, towerKey *btcec.PrivateKey) (string, error) {
	if _, err := wtcrypto.RecoverUserID(r.a.SignedBytes(), r.sig); err != nil {
		return "", err
	}
	return wtcrypto.SignMessage(teos.AppointmentReceiptBytes(r.sig, testHeight), towerKey), nil
}

// cryptoCost times cryptoOnce on one goroutine: wall and CPU nanoseconds per call.
func cryptoCost(b *testing.B, reqs []signedAdd) cost {
	key := privKey("tower")
	const n = 300
	cpu := startCPU()
	start := time.Now()
	for i := range n {
		if _, err := cryptoOnce(reqs[i%len(reqs)], key); err != nil {
			b.Fatal(err)
		}
	}
	c := cost{wallNs: float64(time.Since(start).Nanoseconds()) / n}
	if end, ok := processCPU(); ok && cpu.ok {
		c.cpuNs = float64((end - cpu.start).Nanoseconds()) / n
	}
	return c
}

type cost struct{ wallNs, cpuNs float64 }

// cpuMeter measures the process's CPU time over the timed part of a benchmark, which tells
// a CPU-bound path (busy ~ 100%) from one that waits (on commits, here).
type cpuMeter struct {
	start time.Duration
	ok    bool
}

func startCPU() cpuMeter {
	d, ok := processCPU()
	return cpuMeter{start: d, ok: ok}
}

// reportBound reports throughput as a share of what the CPUs could do if the crypto were
// the only cost (%bound: crypto wall time per op on each of GOMAXPROCS cores). On a shared
// machine wall times vary, so it also reports CPU time per request (the in-process client's
// included), the crypto's share of it (the %bound a CPU-bound run would reach) and how
// busy the CPUs were (low means the requests wait, here on commits).
func reportBound(b *testing.B, crypto cost, cpu cpuMeter) {
	if b.N == 0 {
		return
	}
	procs := float64(runtime.GOMAXPROCS(0))
	elapsed := float64(b.Elapsed().Nanoseconds())
	nsPerOp := elapsed / float64(b.N)
	b.ReportMetric(100*crypto.wallNs/(nsPerOp*procs), "%bound")
	b.ReportMetric(1e9/nsPerOp, "req/s")
	if end, ok := processCPU(); ok && cpu.ok {
		used := float64((end - cpu.start).Nanoseconds())
		b.ReportMetric(used/float64(b.N)/1e3, "cpu-µs/op")
		b.ReportMetric(100*crypto.cpuNs*float64(b.N)/used, "%crypto-cpu")
		b.ReportMetric(100*used/(elapsed*procs), "%busy")
	}
}

func parallelism() int {
	procs := runtime.GOMAXPROCS(0)
	return (*benchClients + procs - 1) / procs
}

// BenchmarkCryptoBound is the floor of one add_appointment: one recovery and one signature.
func BenchmarkCryptoBound(b *testing.B) {
	reqs := presigned(1024)
	key := privKey("tower")
	i := 0
	cpu := startCPU()
	for b.Loop() {
		if _, err := cryptoOnce(reqs[i%len(reqs)], key); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if end, ok := processCPU(); ok && cpu.ok {
		b.ReportMetric(float64((end-cpu.start).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
	}
}

// BenchmarkCryptoBoundParallel is the same on every CPU: it shows whether the crypto scales
// with GOMAXPROCS (it does not fully on SMT siblings), which the %bound metric assumes.
func BenchmarkCryptoBoundParallel(b *testing.B) {
	reqs := presigned(1024)
	key := privKey("tower")
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cryptoOnce(reqs[int(next.Add(1))%len(reqs)], key); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAddAppointmentCore calls the watcher directly: authentication, slot charge and a
// durable bbolt commit (fsync on, default batching), receipt signature.
func BenchmarkAddAppointmentCore(b *testing.B) {
	reqs := presigned(b.N)
	crypto := cryptoCost(b, reqs)
	db, err := store.Open(filepath.Join(b.TempDir(), "teos.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	gk := gatekeeper.New(gatekeeper.Config{Store: db, SubscriptionSlots: 1 << 30, SubscriptionDuration: 1 << 20}, testHeight)
	w := watcher.New(watcher.Config{Store: db, Gatekeeper: gk, Responder: acceptAll{}, TowerKey: privKey("tower")})
	registerBenchUsers(b, gk)

	var next atomic.Int64
	b.SetParallelism(parallelism())
	b.ResetTimer()
	cpu := startCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := reqs[next.Add(1)-1]
			if _, err := w.AddAppointment(r.a, r.sig); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportBound(b, crypto, cpu)
}

// BenchmarkAddAppointmentHTTP goes through everything a client sees: keep-alive HTTP on
// loopback, httpapi, the internal gRPC hop on loopback, the core and the store.
func BenchmarkAddAppointmentHTTP(b *testing.B) {
	reqs := presigned(b.N)
	crypto := cryptoCost(b, reqs)
	s := newStackWith(b, stackConfig{slots: 1 << 30, duration: 1 << 20, height: testHeight})
	registerBenchUsers(b, s.gk)
	cpu := postAdds(b, s.url+"/add_appointment", reqs)
	reportBound(b, crypto, cpu)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appts/s")
}

// BenchmarkAddAppointmentsHTTPBatch is BenchmarkAddAppointmentHTTP through the batch
// extension, POST /add_appointments with 100 appointments a request. One op is one
// appointment, so ns/op and appts/s compare directly with the single-item benchmark.
func BenchmarkAddAppointmentsHTTPBatch(b *testing.B) {
	const batchSize = 100
	reqs := presigned(b.N)
	crypto := cryptoCost(b, reqs)
	var bodies [][]byte
	for start := 0; start < b.N; start += batchSize {
		var body bytes.Buffer
		body.WriteString(`{"appointments":[`)
		for i := start; i < min(start+batchSize, b.N); i++ {
			if i > start {
				body.WriteByte(',')
			}
			body.Write(reqs[i].body)
		}
		body.WriteString(`]}`)
		bodies = append(bodies, body.Bytes())
	}
	s := newStackWith(b, stackConfig{slots: 1 << 30, duration: 1 << 20, height: testHeight})
	registerBenchUsers(b, s.gk)
	clients := min(4*runtime.GOMAXPROCS(0), len(bodies)) // enough that the CPUs work while a batch commits
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	url := s.url + "/add_appointments"

	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	cpu := startCPU()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte(`"error"`)) {
					b.Errorf("status %d %.200s %v", resp.StatusCode, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	reportBound(b, crypto, cpu)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appts/s")
}

// postAdds posts reqs to url from parallelism() goroutines over keep-alive connections, each
// expecting 200, with the timer running, and returns the CPU meter started with the load.
func postAdds(b *testing.B, url string, reqs []signedAdd) cpuMeter {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        2 * *benchClients,
		MaxIdleConnsPerHost: 2 * *benchClients, // the default (2) would reconnect all the time
		DisableCompression:  true,
	}}
	b.Cleanup(client.CloseIdleConnections)
	var next atomic.Int64
	b.SetParallelism(parallelism())
	b.ResetTimer()
	cpu := startCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := reqs[next.Add(1)-1]
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(r.body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Errorf("status %d %s %v", resp.StatusCode, body, err)
				return
			}
		}
	})
	b.StopTimer()
	return cpu
}
