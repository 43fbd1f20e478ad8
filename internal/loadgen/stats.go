package loadgen

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 2 minutes, with 3
// significant digits (0.1% resolution).
const (
	minLatencyUS = 1
	maxLatencyUS = int64(2 * time.Minute / time.Microsecond)
)

func newHistogram(digits int) *hdrhistogram.Histogram {
	return hdrhistogram.New(minLatencyUS, maxLatencyUS, digits)
}

// Outcome is what one request ended in, as the load tool sees it.
type Outcome struct {
	At      time.Time     // when the request was sent
	Latency time.Duration // until the whole answer was read, or the failure
	Code    int           // HTTP status; 0 when there was no answer
	Err     string        // transport failure or timeout ("" with a status)
	Kind    string        // "vote" or "order"
}

// Class is the key under which an outcome is counted in the report:
// the status code ("202", "400", "503"), "timeout", or "transport".
func (o Outcome) Class() string {
	if o.Code != 0 {
		return strconv.Itoa(o.Code)
	}
	if isTimeout(o.Err) {
		return "timeout"
	}
	return "transport"
}

// OK reports a 2xx answer.
func (o Outcome) OK() bool { return o.Code >= 200 && o.Code < 300 }

// Unknown reports an outcome after which the request may or may not have
// taken effect: no answer (timeout, dropped connection) or a 5xx.
func (o Outcome) Unknown() bool { return o.Code == 0 || o.Code >= 500 }

func isTimeout(err string) bool {
	return strings.Contains(err, "Timeout") || strings.Contains(err, "timeout") ||
		strings.Contains(err, "deadline exceeded")
}

// Stats accumulates outcomes: an HDR histogram of every latency, counts by
// class, and one bucket per second of the run for the time series. It is
// safe for concurrent use.
type Stats struct {
	mu      sync.Mutex
	start   time.Time
	first   time.Time
	last    time.Time
	hist    *hdrhistogram.Histogram
	okHist  *hdrhistogram.Histogram
	classes map[string]int64
	kinds   map[string]*hdrhistogram.Histogram
	seconds []*second
	total   int64
	ok      int64
}

type second struct {
	hist   *hdrhistogram.Histogram
	count  int64
	ok     int64
	errors int64
}

// NewStats starts counting; second 0 of the time series begins at start.
func NewStats(start time.Time) *Stats {
	return &Stats{start: start, hist: newHistogram(3), okHist: newHistogram(3),
		classes: map[string]int64{}, kinds: map[string]*hdrhistogram.Histogram{}}
}

// Record adds one outcome. Its latency counts in the second it completed.
func (s *Stats) Record(o Outcome) {
	us := max(int64(o.Latency/time.Microsecond), minLatencyUS)
	us = min(us, maxLatencyUS)
	end := o.At.Add(o.Latency)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.hist.RecordValue(us)
	s.classes[o.Class()]++
	if o.Kind != "" {
		h := s.kinds[o.Kind]
		if h == nil {
			h = newHistogram(3)
			s.kinds[o.Kind] = h
		}
		h.RecordValue(us)
	}
	if o.OK() {
		s.ok++
		s.okHist.RecordValue(us)
	}
	if s.first.IsZero() || o.At.Before(s.first) {
		s.first = o.At
	}
	if end.After(s.last) {
		s.last = end
	}
	i := max(int(end.Sub(s.start)/time.Second), 0)
	for len(s.seconds) <= i {
		s.seconds = append(s.seconds, &second{hist: newHistogram(2)})
	}
	b := s.seconds[i]
	b.count++
	b.hist.RecordValue(us)
	if o.OK() {
		b.ok++
	} else {
		b.errors++
	}
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// Point is one second of the time series: the requests that completed in
// it. Span is the part of that second the run covered (the last second of
// a run is partial).
type Point struct {
	Second   int     `json:"second"`
	Span     float64 `json:"span_s"`
	Requests int64   `json:"requests"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

// Summary is the figures of a set of outcomes.
type Summary struct {
	Requests int64              `json:"requests"`
	OK       int64              `json:"ok"`
	Errors   int64              `json:"errors"`
	ByClass  map[string]int64   `json:"by_status"`
	ByKind   map[string]int64   `json:"by_kind"`
	KindLat  map[string]Latency `json:"latency_by_kind"`
	Elapsed  float64            `json:"elapsed_s"` // first send to last answer
	Rate     float64            `json:"requests_per_s"`
	OKRate   float64            `json:"ok_per_s"`
	Latency  Latency            `json:"latency"`    // every request
	OKLat    Latency            `json:"ok_latency"` // 2xx only
	Series   []Point            `json:"series,omitempty"`
}

// Summary returns the figures so far. The series is included if asked.
func (s *Stats) Summary(series bool) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := Summary{Requests: s.total, OK: s.ok, Errors: s.total - s.ok,
		ByClass: make(map[string]int64, len(s.classes)), ByKind: make(map[string]int64, len(s.kinds)),
		KindLat: make(map[string]Latency, len(s.kinds)),
		Latency: latencyOf(s.hist), OKLat: latencyOf(s.okHist)}
	for k, v := range s.classes {
		sum.ByClass[k] = v
	}
	for k, h := range s.kinds {
		sum.ByKind[k] = h.TotalCount()
		sum.KindLat[k] = latencyOf(h)
	}
	if s.total > 0 {
		sum.Elapsed = s.last.Sub(s.first).Seconds()
		if sum.Elapsed > 0 {
			sum.Rate = float64(s.total) / sum.Elapsed
			sum.OKRate = float64(s.ok) / sum.Elapsed
		}
	}
	if series {
		for i, b := range s.seconds {
			p := Point{Second: i, Span: 1, Requests: b.count, OK: b.ok, Errors: b.errors}
			if end := s.last.Sub(s.start).Seconds(); end < float64(i+1) {
				p.Span = max(end-float64(i), 0.001)
			}
			if b.count > 0 {
				p.P50 = float64(b.hist.ValueAtQuantile(50)) / 1000
				p.P99 = float64(b.hist.ValueAtQuantile(99)) / 1000
				p.Max = float64(b.hist.Max()) / 1000
			}
			sum.Series = append(sum.Series, p)
		}
	}
	return sum
}

// Live is what the progress display shows.
type Live struct {
	Elapsed  time.Duration
	Requests int64
	Errors   int64
	Rate     float64 // over the last whole second
	P99      float64 // ms, so far
}

// Live returns the figures for the progress display.
func (s *Stats) Live(now time.Time) Live {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := Live{Elapsed: now.Sub(s.start), Requests: s.total, Errors: s.total - s.ok}
	if s.total > 0 {
		l.P99 = float64(s.hist.ValueAtQuantile(99)) / 1000
	}
	if i := int(now.Sub(s.start)/time.Second) - 1; i >= 0 && i < len(s.seconds) {
		l.Rate = float64(s.seconds[i].count)
	}
	return l
}

// formatClasses renders counts by class in a stable order: 2xx first.
func formatClasses(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
