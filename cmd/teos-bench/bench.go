package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

type benchUser struct {
	key      *btcec.PrivateKey
	id       teos.UserID
	regBody  []byte
	infoBody []byte
}

// addReq is one add_appointment request; sig and body are empty until signed.
type addReq struct {
	user int
	a    teos.Appointment
	sig  string
	body []byte
}

type runner struct {
	cfg     config
	client  *http.Client
	users   []benchUser
	tower   teos.UserID // zero unless cfg.towerID is set
	verify  bool
	blob    []byte
	pool    []addReq
	next    atomic.Int64 // index into pool; past its end requests are signed inline
	issued  atomic.Int64 // requests started, for -n
	inlined atomic.Int64 // add requests signed inside the loop

	addedMu sync.Mutex
	added   []addReq // a bounded sample of stored appointments, for get_appointment
}

const addedSample = 4096

func bench(ctx context.Context, cfg config, progress io.Writer) (*report, error) {
	r := &runner{cfg: cfg, client: &http.Client{
		Timeout: cfg.timeout,
		Transport: &http.Transport{
			MaxIdleConns:        cfg.conns,
			MaxIdleConnsPerHost: cfg.conns, // the default (2) would reconnect all the time
			MaxConnsPerHost:     cfg.conns,
			DisableCompression:  true,
		},
	}}
	defer r.client.CloseIdleConnections()
	if cfg.towerID != "" {
		b, err := hex.DecodeString(cfg.towerID)
		if err != nil {
			return nil, fmt.Errorf("-towerid: %w", err)
		}
		if r.tower, err = teos.ParseUserID(b); err != nil {
			return nil, fmt.Errorf("-towerid: %w", err)
		}
		r.verify = true
	}
	r.blob = make([]byte, cfg.blobLen)
	_, _ = rand.Read(r.blob)

	rep := &report{Config: cfg.public(), Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Start: time.Now().UTC()}
	rep.LoadBefore = loadAvg()

	if err := r.makeUsers(); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "teos-bench: registering %d users at %s\n", cfg.users, cfg.url)
	regStart := time.Now()
	if err := r.registerAll(ctx); err != nil {
		return nil, err
	}
	rep.RegisterSeconds = time.Since(regStart).Seconds()

	if !cfg.inline && cfg.mix.has(epAdd) {
		fmt.Fprintf(progress, "teos-bench: signing %d add_appointment requests ahead\n", cfg.presign)
		r.presignAdds(cfg.presign)
	}

	if cfg.bound > 0 {
		fmt.Fprintln(progress, "teos-bench: timing the crypto bound")
		rep.BoundBefore = measureBound(cfg.bound)
	}

	fmt.Fprintf(progress, "teos-bench: load with %d connections\n", cfg.conns)
	cpu0 := processCPU()
	stats, elapsed := r.load(ctx)
	if cpu0 > 0 {
		rep.LoadCPUSeconds = (processCPU() - cpu0).Seconds()
	}
	rep.LoadAfter = loadAvg()
	rep.Seconds = elapsed.Seconds()
	rep.InlineSigned = r.inlined.Load()
	rep.Endpoints = stats.summaries(elapsed)
	rep.Errors = stats.errors
	rep.ReceiptMismatches = stats.mismatches
	rep.ReceiptsChecked = stats.checked

	if cfg.bound > 0 {
		rep.BoundAfter = measureBound(cfg.bound)
		rep.setRatio()
	}
	return rep, nil
}

func (r *runner) makeUsers() error {
	r.users = make([]benchUser, r.cfg.users)
	for i := range r.users {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			return fmt.Errorf("user key: %w", err)
		}
		id := teos.UserIDFromPubKey(k.PubKey())
		info, _ := json.Marshal(map[string]string{"signature": wtcrypto.SignMessage([]byte("get subscription info"), k)})
		reg, _ := json.Marshal(map[string]string{"user_id": id.String()})
		r.users[i] = benchUser{key: k, id: id, regBody: reg, infoBody: info}
	}
	return nil
}

// registerAll registers every user, at most cfg.conns at a time; any failure stops the run.
func (r *runner) registerAll(ctx context.Context) error {
	sem := make(chan struct{}, r.cfg.conns)
	errc := make(chan error, len(r.users))
	var wg sync.WaitGroup
	for i := range r.users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			o := r.do(ctx, epRegister, r.users[i].regBody)
			switch {
			case o.err != nil:
				errc <- fmt.Errorf("register: %w", o.err)
			case o.status != http.StatusOK:
				errc <- fmt.Errorf("register: HTTP %d: %s", o.status, o.body)
			case r.verify && !r.registrationSigned(i, o.body):
				errc <- errors.New("register: receipt not signed by -towerid")
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func (r *runner) registrationSigned(user int, body []byte) bool {
	var resp struct {
		AvailableSlots     uint32 `json:"available_slots"`
		SubscriptionStart  uint32 `json:"subscription_start"`
		SubscriptionExpiry uint32 `json:"subscription_expiry"`
		Signature          string `json:"subscription_signature"`
	}
	if json.Unmarshal(body, &resp) != nil {
		return false
	}
	rec := teos.RegistrationReceipt{UserID: r.users[user].id, AvailableSlots: resp.AvailableSlots,
		SubscriptionStart: resp.SubscriptionStart, SubscriptionExpiry: resp.SubscriptionExpiry}
	return wtcrypto.VerifySignature(rec.SignedBytes(), resp.Signature, r.tower)
}

// newAdd builds an unsigned request for a fresh random locator; users take turns.
func (r *runner) newAdd(i int) addReq {
	var a teos.Appointment
	_, _ = rand.Read(a.Locator[:])
	a.EncryptedBlob = r.blob
	a.ToSelfDelay = 42
	return addReq{user: i % len(r.users), a: a}
}

func (r *runner) sign(q *addReq) {
	q.sig = wtcrypto.SignMessage(q.a.SignedBytes(), r.users[q.user].key)
	q.body, _ = json.Marshal(map[string]any{
		"appointment": map[string]any{
			"locator":        q.a.Locator.String(),
			"encrypted_blob": hex.EncodeToString(q.a.EncryptedBlob),
			"to_self_delay":  q.a.ToSelfDelay,
		},
		"signature": q.sig,
	})
}

func (r *runner) presignAdds(n int) {
	r.pool = make([]addReq, n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				r.pool[i] = r.newAdd(i)
				r.sign(&r.pool[i])
			}
		})
	}
	wg.Wait()
}

// nextAdd hands out the presigned requests in order, then signs inline.
func (r *runner) nextAdd() addReq {
	i := int(r.next.Add(1) - 1)
	if i < len(r.pool) {
		return r.pool[i]
	}
	q := r.newAdd(i)
	r.sign(&q)
	if !r.cfg.inline {
		r.inlined.Add(1)
	}
	return q
}

// load runs cfg.conns workers until the duration passes, -n requests were started or ctx ends.
func (r *runner) load(ctx context.Context) (*stats, time.Duration) {
	if r.cfg.count == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.duration)
		defer cancel()
	}
	perWorker := make([]*stats, r.cfg.conns)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range r.cfg.conns {
		perWorker[w] = newStats()
		wg.Go(func() { r.worker(ctx, w, perWorker[w]) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := newStats()
	for _, s := range perWorker {
		total.merge(s)
	}
	return total, elapsed
}

func (r *runner) worker(ctx context.Context, w int, st *stats) {
	rng := mrand.New(mrand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	do := r.do
	if r.cfg.lean {
		lc, err := newLeanConn(r.cfg.url, r.cfg.timeout)
		if err != nil {
			st.record(epAdd, outcome{err: err})
			return
		}
		defer lc.close()
		do = lc.post
	}
	for ctx.Err() == nil {
		if r.cfg.count > 0 && r.issued.Add(1) > int64(r.cfg.count) {
			return
		}
		ep := r.cfg.mix.pick(rng.Float64())
		var body []byte
		var q addReq
		switch ep {
		case epGet:
			stored, ok := r.sampleAdded(rng)
			if !ok {
				ep = epAdd // nothing stored yet to look up
				break
			}
			body = r.getBody(stored)
		case epInfo:
			body = r.users[rng.IntN(len(r.users))].infoBody
		case epRegister:
			body = r.users[rng.IntN(len(r.users))].regBody
		}
		if ep == epAdd {
			q = r.nextAdd()
			body = q.body
		}
		o := do(ctx, ep, body)
		if o.err != nil && ctx.Err() != nil {
			return // cut off by the deadline: neither a result nor an error
		}
		st.record(ep, o)
		if ep == epAdd && o.err == nil && o.status == http.StatusOK {
			if r.verify && st.adds%int64(r.cfg.verifyN) == 0 {
				st.checked++
				if !r.receiptSigned(q, o.body) {
					st.mismatches++
				}
			}
			st.adds++
			r.remember(q, rng)
		}
	}
}

func (r *runner) getBody(q addReq) []byte {
	loc := q.a.Locator
	b, _ := json.Marshal(map[string]string{
		"locator":   loc.String(),
		"signature": wtcrypto.SignMessage(teos.GetAppointmentMessage(loc), r.users[q.user].key),
	})
	return b
}

func (r *runner) remember(q addReq, rng *mrand.Rand) {
	r.addedMu.Lock()
	defer r.addedMu.Unlock()
	if len(r.added) < addedSample {
		r.added = append(r.added, q)
		return
	}
	r.added[rng.IntN(addedSample)] = q
}

func (r *runner) sampleAdded(rng *mrand.Rand) (addReq, bool) {
	r.addedMu.Lock()
	defer r.addedMu.Unlock()
	if len(r.added) == 0 {
		return addReq{}, false
	}
	return r.added[rng.IntN(len(r.added))], true
}

func (r *runner) receiptSigned(q addReq, body []byte) bool {
	var resp struct {
		Locator    string `json:"locator"`
		StartBlock uint32 `json:"start_block"`
		Signature  string `json:"signature"`
	}
	if json.Unmarshal(body, &resp) != nil || resp.Locator != q.a.Locator.String() {
		return false
	}
	return wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(q.sig, resp.StartBlock), resp.Signature, r.tower)
}

// outcome is one request's result; latency covers sending the request and reading the reply.
type outcome struct {
	status  int
	body    []byte
	latency time.Duration
	err     error
}

func (r *runner) do(ctx context.Context, ep string, body []byte) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.cfg.url, "/")+"/"+ep, bytes.NewReader(body))
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		return outcome{err: err, latency: time.Since(start)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return outcome{status: resp.StatusCode, body: raw, latency: time.Since(start), err: err}
}
