package main

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/posbridge/posbridge/internal/payment"
	"github.com/posbridge/posbridge/internal/terminal"
)

// metrics is the daemon's Prometheus registry (its own, not the global
// one). Counters are fed by the payment service (payment.Observer) and the
// gateway's Observe hook; gauges are read from the live parts at scrape time.
type metrics struct {
	reg        *prometheus.Registry
	payments   *prometheus.CounterVec
	recoveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec
}

var _ payment.Observer = (*metrics)(nil)

func newMetrics(version string) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		payments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "posbridge", Name: "payments_total",
			Help: "Payment operations that reached a status, by operation, status and route.",
		}, []string{"operation", "status", "route"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "posbridge", Name: "recoveries_total",
			Help: "Unknown outcomes settled by recovery, by how: search, void, refund, reverse, needs_attention.",
		}, []string{"how"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "posbridge", Name: "terminal_request_seconds",
			Help:    "Terminal requests by route, endpoint and result (ok, declined or error kind); a charge includes the customer's time.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180},
		}, []string{"route", "endpoint", "result"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "posbridge", Name: "build_info",
		Help:        "Build information; the value is 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	reg.MustRegister(m.payments, m.recoveries, m.latency, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Settled implements payment.Observer.
func (m *metrics) Settled(op payment.Operation, status payment.Status, route payment.Route) {
	m.payments.WithLabelValues(string(op), string(status), string(route)).Inc()
}

// Recovered implements payment.Observer.
func (m *metrics) Recovered(how string) { m.recoveries.WithLabelValues(how).Inc() }

// observe is the gateway's Observe hook.
func (m *metrics) observe(_ string, route payment.Route, e terminal.Endpoint, took time.Duration, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, payment.ErrNotSent):
		result = "not_sent"
	case errors.Is(err, payment.ErrOutcomeUnknown):
		result = "unknown"
	case errors.Is(err, payment.ErrBusy):
		result = "busy"
	case errors.Is(err, payment.ErrNothingToAbort):
		result = "nothing_to_abort"
	default:
		result = "terminal_error"
	}
	m.latency.WithLabelValues(string(route), string(e), result).Observe(took.Seconds())
}

// watch registers the gauges read from the daemon's live parts.
func (m *metrics) watch(d *daemon) {
	health := func() payment.Health { return d.svc.Health() }
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "posbridge", Name: "recovering",
			Help: "Payments whose outcome recovery is settling now."},
			func() float64 { return float64(health().Recovering) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "posbridge", Name: "needs_attention",
			Help: "Payments recovery could not settle: a person must look (posbridge journal ls --status needs_attention)."},
			func() float64 { return float64(len(health().NeedsAttention)) }),
		&journalCollector{d: d},
		&routeCollector{d: d},
	)
}

// handler serves the registry.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

var (
	journalBytesDesc    = prometheus.NewDesc("posbridge_journal_bytes", "Size of the journal file.", nil, nil)
	journalRecordsDesc  = prometheus.NewDesc("posbridge_journal_records", "Records in the journal.", nil, nil)
	journalInFlightDesc = prometheus.NewDesc("posbridge_journal_in_flight", "Journal records not final (pending, unknown, needs_attention).", nil, nil)
	routeUpDesc         = prometheus.NewDesc("posbridge_route_up", "Whether a terminal's route is usable (LAN: address known and connectable; cloud: configured).", []string{"terminal", "route"}, nil)
	routeInUseDesc      = prometheus.NewDesc("posbridge_route_in_use", "The route a terminal's operations go over now (1 for the route in use).", []string{"terminal", "route"}, nil)
	busyDesc            = prometheus.NewDesc("posbridge_terminal_busy", "Whether an operation holds the terminal.", []string{"terminal"}, nil)
)

type journalCollector struct{ d *daemon }

func (c *journalCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- journalBytesDesc
	ch <- journalRecordsDesc
	ch <- journalInFlightDesc
}

func (c *journalCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.d.journal.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(journalBytesDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(journalBytesDesc, prometheus.GaugeValue, float64(st.FileSize))
	ch <- prometheus.MustNewConstMetric(journalRecordsDesc, prometheus.GaugeValue, float64(st.Records))
	ch <- prometheus.MustNewConstMetric(journalInFlightDesc, prometheus.GaugeValue, float64(st.InFlight))
}

type routeCollector struct{ d *daemon }

func (c *routeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- routeUpDesc
	ch <- routeInUseDesc
	ch <- busyDesc
}

func (c *routeCollector) Collect(ch chan<- prometheus.Metric) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, st := range c.d.gateway.Status() {
		ch <- prometheus.MustNewConstMetric(routeUpDesc, prometheus.GaugeValue, b(st.LANUp && st.LANAddress != ""), st.Name, "lan")
		ch <- prometheus.MustNewConstMetric(routeUpDesc, prometheus.GaugeValue, b(st.Cloud), st.Name, "cloud")
		for _, r := range []payment.Route{payment.RouteLAN, payment.RouteCloud} {
			ch <- prometheus.MustNewConstMetric(routeInUseDesc, prometheus.GaugeValue, b(st.Route == r), st.Name, string(r))
		}
		ch <- prometheus.MustNewConstMetric(busyDesc, prometheus.GaugeValue, b(c.d.svc.Busy(st.Name) != ""), st.Name)
	}
}
