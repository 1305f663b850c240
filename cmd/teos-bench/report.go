package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// stats collects one worker's results; workers merge theirs at the end, so no locking.
type stats struct {
	latencies  map[string][]time.Duration
	errs       map[string]int64 // endpoint -> errors
	errors     map[string]int64 // "endpoint status/code" -> count
	mismatches int64
	checked    int64 // receipts checked
	adds       int64 // add_appointment requests answered 200
}

func newStats() *stats {
	return &stats{latencies: map[string][]time.Duration{}, errs: map[string]int64{}, errors: map[string]int64{}}
}

func (s *stats) record(ep string, o outcome) {
	if o.err != nil {
		s.errs[ep]++
		s.errors[ep+" transport: "+shortErr(o.err)]++
		return
	}
	s.latencies[ep] = append(s.latencies[ep], o.latency)
	if o.status != 200 {
		s.errs[ep]++
		s.errors[fmt.Sprintf("%s HTTP %d%s", ep, o.status, errorCode(o.body))]++
	}
}

func (s *stats) merge(o *stats) {
	for ep, l := range o.latencies {
		s.latencies[ep] = append(s.latencies[ep], l...)
	}
	for k, v := range o.errs {
		s.errs[k] += v
	}
	for k, v := range o.errors {
		s.errors[k] += v
	}
	s.mismatches += o.mismatches
	s.checked += o.checked
	s.adds += o.adds
}

// errorCode renders a teos error body's error_code, empty if there is none.
func errorCode(body []byte) string {
	var e struct {
		Code *int `json:"error_code"`
	}
	if json.Unmarshal(body, &e) != nil || e.Code == nil {
		return ""
	}
	return fmt.Sprintf(" error_code=%d", *e.Code)
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// endpointSummary is one row of the report. Latencies are in milliseconds and cover every
// request that got an HTTP reply, error replies included.
type endpointSummary struct {
	Endpoint string  `json:"endpoint"`
	Requests int     `json:"requests"`
	Errors   int64   `json:"errors"`
	PerSec   float64 `json:"req_per_sec"`
	OKPerSec float64 `json:"ok_per_sec"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

func (s *stats) summaries(elapsed time.Duration) []endpointSummary {
	var out []endpointSummary
	for _, ep := range []string{epAdd, epGet, epInfo, epRegister} {
		l := s.latencies[ep]
		if len(l) == 0 && s.errs[ep] == 0 {
			continue
		}
		slices.Sort(l)
		n := len(l) + int(s.errs[ep]) - s.httpErrors(ep)
		sum := endpointSummary{Endpoint: ep, Requests: n, Errors: s.errs[ep],
			PerSec:   float64(n) / elapsed.Seconds(),
			OKPerSec: float64(int64(n)-s.errs[ep]) / elapsed.Seconds(),
			P50:      ms(quantile(l, 0.50)), P90: ms(quantile(l, 0.90)), P99: ms(quantile(l, 0.99)), Max: ms(quantile(l, 1))}
		out = append(out, sum)
	}
	return out
}

// httpErrors counts the errors that got an HTTP reply, which latencies already hold.
func (s *stats) httpErrors(ep string) int {
	n := 0
	for k, v := range s.errors {
		if strings.HasPrefix(k, ep+" HTTP ") {
			n += int(v)
		}
	}
	return n
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

type publicConfig struct {
	URL      string `json:"url"`
	Users    int    `json:"users"`
	Conns    int    `json:"connections"`
	Duration string `json:"duration,omitempty"`
	Count    int    `json:"count,omitempty"`
	Mix      string `json:"mix"`
	Signing  string `json:"signing"`
	BlobLen  int    `json:"blob_len"`
	Verify   bool   `json:"verify_receipts"`
	HTTP     string `json:"http_client"`
}

func (c config) public() publicConfig {
	p := publicConfig{URL: c.url, Users: c.users, Conns: c.conns, Count: c.count, BlobLen: c.blobLen, Verify: c.towerID != "",
		Signing: "presigned", HTTP: "net/http"}
	if c.lean {
		p.HTTP = "lean"
	}
	if c.count == 0 {
		p.Duration = c.duration.String()
	}
	if c.inline {
		p.Signing = "inline"
	}
	var parts []string
	prev := 0.0
	for i, ep := range c.mix.endpoints {
		parts = append(parts, fmt.Sprintf("%s=%.3g", ep, c.mix.cumulative[i]-prev))
		prev = c.mix.cumulative[i]
	}
	p.Mix = strings.Join(parts, ",")
	return p
}

type report struct {
	Config          publicConfig `json:"config"`
	Cores           int          `json:"cores"`
	GOMAXPROCS      int          `json:"gomaxprocs"`
	Start           time.Time    `json:"start"`
	LoadBefore      string       `json:"loadavg_before"`
	LoadAfter       string       `json:"loadavg_after"`
	RegisterSeconds float64      `json:"register_seconds"`
	Seconds         float64      `json:"seconds"`
	InlineSigned    int64        `json:"inline_signed_after_pool,omitempty"`
	// LoadCPUSeconds is this process's own CPU during the timed phase (0 where unknown): what
	// the load generator took from a tower on the same machine.
	LoadCPUSeconds    float64           `json:"load_cpu_seconds,omitempty"`
	Endpoints         []endpointSummary `json:"endpoints"`
	Errors            map[string]int64  `json:"errors"`
	ReceiptsChecked   int64             `json:"receipts_checked"`
	ReceiptMismatches int64             `json:"receipt_mismatches"`
	BoundBefore       *bound            `json:"crypto_bound_before,omitempty"`
	BoundAfter        *bound            `json:"crypto_bound_after,omitempty"`
	// AddOKPerSec over the higher of the two bounds (so the ratio errs low).
	BoundRatio         float64 `json:"add_ratio_to_bound,omitempty"`
	ParallelBoundRatio float64 `json:"add_ratio_to_parallel_bound,omitempty"`
}

func (r *report) setRatio() {
	var add *endpointSummary
	for i := range r.Endpoints {
		if r.Endpoints[i].Endpoint == epAdd {
			add = &r.Endpoints[i]
		}
	}
	if add == nil || r.BoundBefore == nil || r.BoundAfter == nil {
		return
	}
	ideal := max(r.BoundBefore.IdealPerSec, r.BoundAfter.IdealPerSec)
	par := max(r.BoundBefore.ParallelPerSec, r.BoundAfter.ParallelPerSec)
	r.BoundRatio = add.OKPerSec / ideal
	r.ParallelBoundRatio = add.OKPerSec / par
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeTable(w io.Writer) {
	c := r.Config
	bounds := "count " + fmt.Sprint(c.Count)
	if c.Count == 0 {
		bounds = "duration " + c.Duration
	}
	fmt.Fprintf(w, "teos-bench %s: %d users, %d connections, %s, mix %s, %s, blob %d B, %s client\n",
		c.URL, c.Users, c.Conns, bounds, c.Mix, c.Signing, c.BlobLen, c.HTTP)
	fmt.Fprintf(w, "machine: %d cores (GOMAXPROCS %d); load average before %s, after %s\n", r.Cores, r.GOMAXPROCS, r.LoadBefore, r.LoadAfter)
	fmt.Fprintf(w, "registration of %d users: %.2fs; timed phase %.2fs", c.Users, r.RegisterSeconds, r.Seconds)
	if r.LoadCPUSeconds > 0 {
		fmt.Fprintf(w, ", teos-bench's own CPU in it %.2fs", r.LoadCPUSeconds)
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\trequests\terrors\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, e := range r.Endpoints {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", e.Endpoint, e.Requests, e.Errors, e.PerSec, e.P50, e.P90, e.P99, e.Max)
	}
	_ = tw.Flush()
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(w, "  %8d  %s\n", r.Errors[k], k)
		}
	}
	if c.Verify {
		fmt.Fprintf(w, "\nreceipts checked: %d, not signed by the tower: %d\n", r.ReceiptsChecked, r.ReceiptMismatches)
	}
	if r.InlineSigned > 0 {
		fmt.Fprintf(w, "presigned pool ran out: %d add requests were signed inline\n", r.InlineSigned)
	}
	for _, b := range []struct {
		name string
		b    *bound
	}{{"before", r.BoundBefore}, {"after", r.BoundAfter}} {
		if b.b != nil {
			fmt.Fprintf(w, "crypto bound %s: recover+sign %.1f µs on one core -> %.0f/s on %d cores; measured on all cores %.0f/s\n",
				b.name, b.b.CostMicros, b.b.IdealPerSec, r.Cores, b.b.ParallelPerSec)
		}
	}
	if r.BoundRatio > 0 {
		fmt.Fprintf(w, "add_appointment OK/s vs crypto bound: %.1f%% of cores x single-core cost, %.1f%% of measured all-core rate\n",
			100*r.BoundRatio, 100*r.ParallelBoundRatio)
	}
}

// loadAvg is the first three fields of /proc/loadavg, or "n/a" where there is none.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}
