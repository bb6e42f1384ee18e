package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics and parses the text exposition.
func (s *opsStack) scrape() map[string]*dto.MetricFamily {
	s.t.Helper()
	a := s.do(http.MethodGet, "/metrics", "")
	if a.status != http.StatusOK {
		s.t.Fatalf("/metrics: got HTTP %d, want 200", a.status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(a.body))
	if err != nil {
		s.t.Fatalf("/metrics: not the Prometheus text format: %v", err)
	}
	return fams
}

// metricValue finds the sample of family name whose labels are exactly
// labels, and returns its value (counter, gauge) or, for a histogram, its
// sample count; ok is false when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, *dto.Histogram, bool) {
	f := fams[name]
	if f == nil {
		return 0, nil, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			match = match && labels[l.GetName()] == l.GetValue()
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), nil, true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), nil, true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), m.GetHistogram(), true
		}
	}
	return 0, nil, false
}

// TestMetricsAfterRealOperations runs the full scenario through the real
// wiring and checks every posbridge metric family, with the values the
// scenario must produce.
func TestMetricsAfterRealOperations(t *testing.T) {
	s := startOps(t, opsOptions{badLane: true})
	s.scenario()
	fams := s.scrape()

	type sample struct {
		name   string
		labels map[string]string
		want   float64
	}
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	pay := func(op, status string) map[string]string { return l("operation", op, "status", status, "route", "lan") }
	req := func(endpoint, result string) map[string]string {
		return l("route", "lan", "endpoint", endpoint, "result", result)
	}
	st, err := os.Stat(filepath.Join(s.dir, "data", journalFileName))
	if err != nil {
		t.Fatal(err)
	}
	samples := []sample{
		// Every operation that reached a status. Charges approved: the
		// first, the one later voided, the leak_pan one, and the lost
		// answer recovery settled; the other lost answer went unknown,
		// then needs_attention.
		{"posbridge_payments_total", pay("charge", "approved"), 4},
		{"posbridge_payments_total", pay("charge", "declined"), 1},
		{"posbridge_payments_total", pay("charge", "failed"), 1},
		{"posbridge_payments_total", pay("charge", "unknown"), 2},
		{"posbridge_payments_total", pay("charge", "needs_attention"), 1},
		{"posbridge_payments_total", pay("authorization", "approved"), 1},
		{"posbridge_payments_total", pay("capture", "approved"), 1},
		{"posbridge_payments_total", pay("tip", "approved"), 1},
		{"posbridge_payments_total", pay("void", "approved"), 1},
		{"posbridge_payments_total", pay("refund", "approved"), 1},
		{"posbridge_recoveries_total", l("how", "search"), 1},
		{"posbridge_recoveries_total", l("how", "needs_attention"), 1},
		// Terminal requests (histogram sample counts): four charges
		// answered (one a decline), one refused by the terminal (lane2's
		// credential), two with their answer lost; recovery's aborts. (The
		// gateway's Observe hook does not see Lookup and Search.)
		{"posbridge_terminal_request_seconds", req("charge", "ok"), 4},
		{"posbridge_terminal_request_seconds", req("charge", "terminal_error"), 1},
		{"posbridge_terminal_request_seconds", req("charge", "unknown"), 2},
		{"posbridge_terminal_request_seconds", req("authorization", "ok"), 1},
		{"posbridge_terminal_request_seconds", req("capture", "ok"), 1},
		{"posbridge_terminal_request_seconds", req("pos_tip", "ok"), 1},
		{"posbridge_terminal_request_seconds", req("void", "ok"), 1},
		{"posbridge_terminal_request_seconds", req("refund", "ok"), 1},
		{"posbridge_terminal_request_seconds", req("abort", "nothing_to_abort"), 2},
		// Gauges.
		{"posbridge_recovering", nil, 0},
		{"posbridge_needs_attention", nil, 1},
		{"posbridge_journal_records", nil, 12},
		{"posbridge_journal_in_flight", nil, 1},
		{"posbridge_journal_bytes", nil, float64(st.Size())},
		{"posbridge_route_up", l("terminal", "lane1", "route", "lan"), 1},
		{"posbridge_route_up", l("terminal", "lane1", "route", "cloud"), 0},
		{"posbridge_route_in_use", l("terminal", "lane1", "route", "lan"), 1},
		{"posbridge_route_in_use", l("terminal", "lane1", "route", "cloud"), 0},
		{"posbridge_terminal_busy", l("terminal", "lane1"), 0},
		{"posbridge_terminal_busy", l("terminal", "lane2"), 0},
		{"posbridge_build_info", l("version", version, "goversion", runtime.Version()), 1},
	}
	for _, sm := range samples {
		got, _, ok := metricValue(fams, sm.name, sm.labels)
		if !ok {
			t.Errorf("%s%v: missing", sm.name, sm.labels)
			continue
		}
		if got != sm.want {
			t.Errorf("%s%v: got %v, want %v", sm.name, sm.labels, got, sm.want)
		}
	}

	// Latency: the simulated customer takes opsThinkTime on the shared
	// clock, so every answered charge took exactly that long.
	_, h, _ := metricValue(fams, "posbridge_terminal_request_seconds", req("charge", "ok"))
	if want := 4 * opsThinkTime.Seconds(); h.GetSampleSum() != want {
		t.Errorf("charge latency sum: got %v s, want %v s", h.GetSampleSum(), want)
	}
	for _, b := range h.GetBucket() {
		want := uint64(0)
		if b.GetUpperBound() >= opsThinkTime.Seconds() {
			want = 4
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("charge latency bucket le=%v: got %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}

	// The Go and process collectors are registered (own registry).
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("%s: missing", name)
		}
	}
	// Nothing else is exported under posbridge_ without this test knowing.
	known := map[string]bool{}
	for _, sm := range samples {
		known[sm.name] = true
	}
	var unknown []string
	for name := range fams {
		if strings.HasPrefix(name, "posbridge_") && !known[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("metric families this test does not check: %v", unknown)
	}

	// The gauges follow the state: once the record needing attention is
	// the only one, /readyz says so too.
	a := s.do(http.MethodGet, "/readyz", "")
	if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), `"needs_attention":{"ok":false,"count":1`) {
		t.Errorf("/readyz: got %d %s; want 503 naming one needs_attention", a.status, a.body)
	}
}
