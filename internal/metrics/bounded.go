package metrics

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BoundedGauges are gauges read together by one call per scrape (a store query) that a scrape
// waits for at most a bound: past it, or when the call fails, the gauges are left out of that
// scrape and every other metric is served. A call still running when the next scrape comes is
// waited for again rather than joined by another, so a store that does not answer is never
// asked twice at once.
type BoundedGauges struct {
	read  func() ([]float64, error)
	wait  time.Duration
	descs []*prometheus.Desc

	mu      sync.Mutex
	running chan struct{} // closed when the call in flight returns; nil when none is
	last    boundedResult // of the last call that returned
}

type boundedResult struct {
	values []float64
	err    error
}

// NewBoundedGauges returns gauges for descs (no variable labels), whose values read returns in
// the same order; a scrape waits for read at most wait (0: DefaultCountsWait).
func NewBoundedGauges(wait time.Duration, read func() ([]float64, error), descs ...*prometheus.Desc) *BoundedGauges {
	if wait <= 0 {
		wait = DefaultCountsWait
	}
	return &BoundedGauges{read: read, wait: wait, descs: descs}
}

func (g *BoundedGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range g.descs {
		ch <- d
	}
}

// values returns those of a call that returned during this scrape, started now unless one is
// already in flight.
func (g *BoundedGauges) values() ([]float64, error) {
	g.mu.Lock()
	if g.running == nil {
		done := make(chan struct{})
		g.running = done
		go func() {
			var r boundedResult
			r.values, r.err = g.read()
			g.mu.Lock()
			g.last, g.running = r, nil
			g.mu.Unlock()
			close(done)
		}()
	}
	done := g.running
	g.mu.Unlock()
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return nil, fmt.Errorf("the store did not answer within %s", g.wait)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last.err == nil && len(g.last.values) != len(g.descs) {
		return nil, fmt.Errorf("%d values read for %d gauges", len(g.last.values), len(g.descs))
	}
	return g.last.values, g.last.err
}

func (g *BoundedGauges) Collect(ch chan<- prometheus.Metric) {
	values, err := g.values()
	if err != nil {
		for _, d := range g.descs {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	for i, d := range g.descs {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, values[i])
	}
}
