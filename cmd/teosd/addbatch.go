package main

import (
	"log/slog"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/teos-go/teos/internal/api/addbatch"
	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/metrics"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// coalesceEnv, set to "off", makes the HTTP edge send each add_appointment as its own internal
// call, as before internal/api/addbatch; set to a number, it is how many add calls may be in
// flight at once (addbatch.DefaultInFlight otherwise). It is a measurement switch, not a setting.
const coalesceEnv = "TEOSD_ADD_COALESCE"

// edgeClient is the HTTP edge's client of the internal API: concurrent add_appointment
// requests share add_appointments calls (internal/api/addbatch), answered exactly as one by
// one. Each held request keeps its own bound, place and client (hold.go): batch calls ask not
// to be held, and a batch the tower cannot serve at once is sent again add by add; while the
// hold is active adds go one by one, and the queue is flushed when a condition goes down.
func edgeClient(conn grpc.ClientConnInterface, held grpcapi.Hold, met *metrics.Metrics, log *slog.Logger) teosv2.PublicTowerServicesClient {
	public := teosv2.NewPublicTowerServicesClient(conn)
	env := os.Getenv(coalesceEnv)
	if env == "off" {
		return public
	}
	inFlight, _ := strconv.Atoi(env) // anything else: the default
	var conds []*hold.Condition
	for _, c := range []*hold.Condition{held.Bitcoind, held.Store} {
		if c != nil {
			conds = append(conds, c)
		}
	}
	c := addbatch.New(public, teosv2.NewPublicTowerExtensionsClient(conn), addbatch.Config{
		MaxItems: grpcapi.MaxBatchItems,
		InFlight: inFlight,
		Bypass: func() bool {
			for _, c := range conds {
				if !c.IsUp() {
					return true
				}
			}
			return false
		},
		NoHoldHeader: grpcapi.NoHoldHeader,
		Logger:       log,
	})
	for _, cond := range conds {
		cond.OnChange(func(up bool, _ error) {
			if !up {
				c.Flush() // never blocks nor calls the condition
			}
		})
	}
	if met != nil {
		if err := met.Register(addBatchCollector{c}); err != nil {
			log.Error("register add batch metrics", "err", err)
		}
	}
	return c
}

var addBatchSize = prometheus.NewDesc("teos_api_add_batch_size",
	"Appointments per internal add call the HTTP API made: concurrent add_appointment requests share one call.", nil, nil)

// addBatchCollector reads the coalescer's counts at scrape time.
type addBatchCollector struct{ c *addbatch.Client }

func (addBatchCollector) Describe(ch chan<- *prometheus.Desc) { ch <- addBatchSize }

func (a addBatchCollector) Collect(ch chan<- prometheus.Metric) {
	s := a.c.Sizes()
	buckets := make(map[float64]uint64, len(s.Buckets))
	for i, n := range s.Buckets {
		buckets[float64(addbatch.SizeBuckets[i])] = n
	}
	ch <- prometheus.MustNewConstHistogram(addBatchSize, s.Calls, float64(s.Adds), buckets)
}
