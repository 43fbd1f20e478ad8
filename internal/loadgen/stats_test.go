package loadgen

import (
	"math"
	"testing"
	"time"
)

func near(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance*want }

// 1,000 latencies of 1..1000 ms: the percentiles are known exactly, within
// the histogram's 0.1% resolution.
func TestStatsPercentiles(t *testing.T) {
	start := time.Unix(1000, 0)
	s := NewStats(start)
	for i := 1; i <= 1000; i++ {
		code := 202
		if i%100 == 0 {
			code = 503
		}
		s.Record(Outcome{At: start.Add(time.Duration(i) * time.Millisecond), Latency: time.Duration(i) * time.Millisecond, Code: code, Kind: "vote"})
	}
	s.Record(Outcome{At: start, Latency: 3 * time.Second, Err: "Post \"http://x/vote\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)", Kind: "order"})
	s.Record(Outcome{At: start, Latency: time.Millisecond, Err: "dial tcp: connection refused", Kind: "order"})

	sum := s.Summary(true)
	if sum.Requests != 1002 || sum.OK != 990 || sum.Errors != 12 {
		t.Fatalf("requests %d ok %d errors %d, want 1002, 990, 12", sum.Requests, sum.OK, sum.Errors)
	}
	want := map[string]int64{"202": 990, "503": 10, "timeout": 1, "transport": 1}
	for k, v := range want {
		if sum.ByClass[k] != v {
			t.Errorf("class %s: %d, want %d (all: %v)", k, sum.ByClass[k], v, sum.ByClass)
		}
	}
	if len(sum.ByClass) != len(want) {
		t.Errorf("classes %v, want %v", sum.ByClass, want)
	}
	if sum.ByKind["vote"] != 1000 || sum.ByKind["order"] != 2 {
		t.Errorf("by kind %v", sum.ByKind)
	}
	v := sum.KindLat["vote"]
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", v.P50, 500}, {"p90", v.P90, 900}, {"p99", v.P99, 990}, {"p99.9", v.P999, 999}, {"max", v.Max, 1000}} {
		if !near(c.got, c.want, 0.002) {
			t.Errorf("votes %s = %.3f ms, want %.0f", c.name, c.got, c.want)
		}
	}
	if !near(sum.Latency.Max, 3000, 0.002) {
		t.Errorf("overall max %.1f ms, want 3000", sum.Latency.Max)
	}
	// 2xx latencies exclude the failures: the 10 503s were at 100, 200, … 1000 ms.
	if !near(sum.OKLat.Max, 999, 0.002) {
		t.Errorf("ok max %.1f ms, want 999", sum.OKLat.Max)
	}
	// Outcomes count in the second they completed: 1..1000 ms end at 2..2000 ms.
	if len(sum.Series) != 4 { // seconds 0, 1, 2 (the 3 s timeout), 3
		t.Fatalf("series has %d seconds, want 4: %+v", len(sum.Series), sum.Series)
	}
	for i, want := range []int64{500, 500, 1, 1} { // second 0 has the refused connection too
		if sum.Series[i].Requests != want {
			t.Errorf("second %d holds %d requests, want %d", i, sum.Series[i].Requests, want)
		}
	}
	if sum.Series[3].Requests != 1 || sum.Series[3].Errors != 1 {
		t.Errorf("second 3: %+v, want the timeout", sum.Series[3])
	}
	if sum.Series[2].Span != 1 || sum.Series[3].Span != 0.001 {
		t.Errorf("spans %.3f %.3f, want 1 and a sliver (the run ends at 3.000 s)", sum.Series[2].Span, sum.Series[3].Span)
	}
	if sum.Elapsed != 3 {
		t.Errorf("elapsed %.3f s, want 3 (first send to last answer)", sum.Elapsed)
	}
}

func TestOutcomeClasses(t *testing.T) {
	for _, c := range []struct {
		o           Outcome
		class       string
		ok, unknown bool
	}{
		{Outcome{Code: 202}, "202", true, false},
		{Outcome{Code: 200}, "200", true, false},
		{Outcome{Code: 400}, "400", false, false},
		{Outcome{Code: 413}, "413", false, false},
		{Outcome{Code: 500}, "500", false, true},
		{Outcome{Code: 503}, "503", false, true},
		{Outcome{Err: "net/http: request canceled (Client.Timeout exceeded while awaiting headers)"}, "timeout", false, true},
		{Outcome{Err: "read: connection reset by peer"}, "transport", false, true},
	} {
		if c.o.Class() != c.class || c.o.OK() != c.ok || c.o.Unknown() != c.unknown {
			t.Errorf("%+v: class %s ok %v unknown %v, want %s %v %v", c.o, c.o.Class(), c.o.OK(), c.o.Unknown(), c.class, c.ok, c.unknown)
		}
	}
}

func TestParseVoterCookie(t *testing.T) {
	id, v, ok := ParseVoterCookie("v1.0123456789abcdef0123456789abcdef.1763779200000001.c2lnbmF0dXJl")
	if !ok || id != "0123456789abcdef0123456789abcdef" || v != 1763779200000001 {
		t.Errorf("got %q %d %v", id, v, ok)
	}
	for _, bad := range []string{"", "v1", "v2.a.1.sig", "v1..1.sig", "v1.a.x.sig", "v1.a.-1.sig", "v1.a.1"} {
		if _, _, ok := ParseVoterCookie(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
