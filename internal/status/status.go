// Package status reads a running deployment's state from its services' own
// /healthz and /metrics, and prints it on one screen: `stack status`.
package status

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Targets are the services' addresses (host:port), by kind.
type Targets struct {
	Web, Workers, Result, Admin []string
}

// Service is what one service answered.
type Service struct {
	Kind, Addr string
	Node       string // as the service names itself
	// Health is "ok", "degraded", "unavailable", or "no answer".
	Health string
	// Failing and Degraded name the dependencies /healthz reports.
	Failing, Degraded string
	metrics           map[string]*dto.MetricFamily
}

// Up reports whether the service answers its health check as ok or degraded.
func (s Service) Up() bool { return s.Health == "ok" || s.Health == "degraded" }

// Shard is one shard's queue as the workers see it (the worst over workers).
type Shard struct {
	Shard         string
	Readable      bool
	Pending, Lag  float64
	OldestUnacked time.Duration
	Applied       float64 // entries applied so far, summed over workers
}

// Report is a deployment's state.
type Report struct {
	At       time.Time
	Services []Service
	Shards   []Shard
	// Postgres is "up", "down" or "unknown", as the services that use it
	// report.
	Postgres string
	// StreamLag is the largest of result's stream lags; Listening is false
	// when a result does not hear of commits.
	StreamLag time.Duration
	Listening bool
	// Votes and Orders captured so far, over every frontend that answered.
	Votes, Orders float64
}

// Gather asks every target for /healthz and /metrics at once, each within
// timeout.
func Gather(ctx context.Context, client *http.Client, t Targets, timeout time.Duration) Report {
	var services []Service
	for _, k := range []struct {
		kind  string
		addrs []string
	}{{"web", t.Web}, {"worker", t.Workers}, {"result", t.Result}, {"admin", t.Admin}} {
		for _, a := range k.addrs {
			services = append(services, Service{Kind: k.kind, Addr: a})
		}
	}
	var wg sync.WaitGroup
	for i := range services {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			services[i].ask(ctx, client)
		})
	}
	wg.Wait()
	return summarize(services)
}

// ask fills s from its /healthz and /metrics.
func (s *Service) ask(ctx context.Context, client *http.Client) {
	s.Health = "no answer"
	resp, err := get(ctx, client, "http://"+s.Addr+"/healthz")
	if err != nil {
		return
	}
	var h struct{ Status, Node, Failing, Degraded string }
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || h.Status == "" {
		s.Health = fmt.Sprintf("unexpected answer (%d)", resp.StatusCode)
		return
	}
	s.Health, s.Node, s.Failing, s.Degraded = h.Status, h.Node, h.Failing, h.Degraded
	resp, err = get(ctx, client, "http://"+s.Addr+"/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	if mfs, err := p.TextToMetricFamilies(resp.Body); err == nil {
		s.metrics = mfs
	}
}

func get(ctx context.Context, client *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return client.Do(req)
}

// each calls f with the value and labels of every sample of the metric
// name that s exported (gauges, counters and untyped).
func (s Service) each(name string, f func(v float64, labels map[string]string)) {
	mf := s.metrics[name]
	if mf == nil {
		return
	}
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		switch {
		case m.Gauge != nil:
			f(m.GetGauge().GetValue(), labels)
		case m.Counter != nil:
			f(m.GetCounter().GetValue(), labels)
		case m.Untyped != nil:
			f(m.GetUntyped().GetValue(), labels)
		}
	}
}

// Sum adds up every sample of the metric name that s exported: a counter
// over all its labels.
func (s Service) Sum(name string) float64 {
	var total float64
	s.each(name, func(v float64, _ map[string]string) { total += v })
	return total
}

func summarize(services []Service) Report {
	r := Report{At: time.Now(), Services: services, Postgres: "unknown", Listening: true}
	shards := map[string]*Shard{}
	shard := func(id string) *Shard {
		if shards[id] == nil {
			shards[id] = &Shard{Shard: id}
		}
		return shards[id]
	}
	postgresDown, postgresUp := false, false
	for _, s := range services {
		if s.Up() {
			switch {
			case strings.Contains(s.Failing, "postgres"):
				postgresDown = true
			case (s.Kind == "result" || s.Kind == "admin") && !strings.Contains(s.Degraded, "postgres"):
				postgresUp = true // their health is Postgres's
			}
		} else if s.Health == "unavailable" && strings.Contains(s.Failing, "postgres") {
			postgresDown = true
		}
		s.each("surge_worker_shard_up", func(v float64, l map[string]string) {
			sh := shard(l["shard"])
			sh.Readable = sh.Readable || v == 1
		})
		s.each("surge_worker_backlog_pending", func(v float64, l map[string]string) {
			sh := shard(l["shard"])
			sh.Pending = math.Max(sh.Pending, v)
		})
		s.each("surge_worker_backlog_lag", func(v float64, l map[string]string) {
			sh := shard(l["shard"])
			sh.Lag = math.Max(sh.Lag, v)
		})
		s.each("surge_worker_oldest_unacked_seconds", func(v float64, l map[string]string) {
			sh := shard(l["shard"])
			sh.OldestUnacked = max(sh.OldestUnacked, time.Duration(v*float64(time.Second)))
		})
		s.each("surge_worker_entries_applied_total", func(v float64, l map[string]string) {
			shard(l["shard"]).Applied += v
		})
		s.each("surge_results_stream_lag_seconds", func(v float64, _ map[string]string) {
			r.StreamLag = max(r.StreamLag, time.Duration(v*float64(time.Second)))
		})
		s.each("surge_results_listening", func(v float64, _ map[string]string) {
			r.Listening = r.Listening && v == 1
		})
		s.each("surge_votes_captured_total", func(v float64, _ map[string]string) { r.Votes += v })
		s.each("surge_orders_captured_total", func(v float64, _ map[string]string) { r.Orders += v })
	}
	switch {
	case postgresDown:
		r.Postgres = "down"
	case postgresUp:
		r.Postgres = "up"
	}
	for _, sh := range shards {
		r.Shards = append(r.Shards, *sh)
	}
	slices.SortFunc(r.Shards, func(a, b Shard) int {
		return cmp.Or(cmp.Compare(len(a.Shard), len(b.Shard)), cmp.Compare(a.Shard, b.Shard))
	})
	return r
}

// Problems lists what is wrong, in the operator's words; none when every
// service answers ok, every shard is readable and Postgres is up.
func (r Report) Problems() []string {
	var p []string
	for _, s := range r.Services {
		if s.Health != "ok" {
			p = append(p, fmt.Sprintf("%s at %s: %s", s.Kind, s.Addr, s.describe()))
		}
	}
	if len(r.Shards) == 0 {
		p = append(p, "no worker reported any shard")
	}
	for _, sh := range r.Shards {
		if !sh.Readable {
			p = append(p, fmt.Sprintf("shard %s cannot be read by any worker", sh.Shard))
		}
	}
	if r.Postgres != "up" {
		p = append(p, "postgres is "+r.Postgres)
	}
	if !r.Listening {
		p = append(p, "a result does not hear of commits: its live results are stale")
	}
	return p
}

// describe is the service's health with what it names: "unavailable:
// redis", "degraded: shard 2", "unavailable: postgres; degraded: shard 2".
func (s Service) describe() string {
	var named []string
	if s.Failing != "" {
		named = append(named, s.Failing)
	}
	if s.Degraded != "" {
		if s.Health == "degraded" {
			named = append(named, s.Degraded)
		} else {
			named = append(named, "degraded: "+s.Degraded)
		}
	}
	if len(named) == 0 {
		return s.Health
	}
	return s.Health + ": " + strings.Join(named, "; ")
}

// Write prints r on one screen: shards, services, Postgres, live results,
// then what is wrong.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "surge status at %s\n\n", r.At.UTC().Format(time.DateTime+" MST"))
	fmt.Fprintln(tw, "SHARD\tREADABLE\tPENDING\tUNDELIVERED\tOLDEST WAITING\tAPPLIED")
	for _, sh := range r.Shards {
		if !sh.Readable {
			fmt.Fprintf(tw, "%s\tNO\t-\t-\t-\t%.0f\n", sh.Shard, sh.Applied)
			continue
		}
		fmt.Fprintf(tw, "%s\tyes\t%.0f\t%.0f\t%s\t%.0f\n", sh.Shard, sh.Pending, sh.Lag, sh.OldestUnacked.Round(time.Millisecond), sh.Applied)
	}
	if len(r.Shards) == 0 {
		fmt.Fprintln(tw, "(no worker answered: the shards are unknown)")
	}
	fmt.Fprintln(tw, "\nSERVICE\tADDRESS\tNODE\tHEALTH")
	for _, s := range r.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Kind, s.Addr, cmp.Or(s.Node, "-"), s.describe())
	}
	fmt.Fprintf(tw, "postgres\t-\t-\t%s\n", r.Postgres)
	fmt.Fprintf(tw, "\ncaptured: %.0f votes, %.0f orders; live results behind by %s", r.Votes, r.Orders, r.StreamLag.Round(time.Millisecond))
	if !r.Listening {
		fmt.Fprint(tw, " (a result hears of no commits)")
	}
	fmt.Fprintln(tw)
	if p := r.Problems(); len(p) > 0 {
		fmt.Fprintf(tw, "\nNOT HEALTHY:\n  %s\n", strings.Join(p, "\n  "))
	} else {
		fmt.Fprintln(tw, "\nall healthy")
	}
	return tw.Flush()
}
