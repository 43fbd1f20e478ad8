package loadgen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Text renders the load figures.
func (rep *Report) Text() string {
	var b strings.Builder
	s := rep.Summary
	rate := "as fast as possible"
	if rep.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s", rep.Rate)
	}
	if rep.Mode == ModeMax {
		rate = "max (" + rep.Objective + ")"
	}
	fmt.Fprintf(&b, "\nsurge load %s → %s, rate %s, %d voters, poll %s %v\n", rep.RunID, rep.Target, rate, rep.Voters, rep.Poll, rep.Choices)
	fmt.Fprintf(&b, "  requests     %d in %.2fs: %.0f req/s, %.0f acknowledged/s\n", s.Requests, s.Elapsed, s.Rate, s.OKRate)
	fmt.Fprintf(&b, "  by status    %s\n", formatClasses(s.ByClass))
	fmt.Fprintf(&b, "  by kind      %s\n", formatClasses(s.ByKind))
	lat := func(name string, l Latency) {
		fmt.Fprintf(&b, "  %-12s p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (mean %.2f) ms\n", name, l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	}
	lat("latency", s.Latency)
	for _, k := range []string{"vote", "order"} {
		if l, ok := s.KindLat[k]; ok && len(s.KindLat) > 1 {
			lat("  "+k+"s", l)
		}
	}
	c := rep.Ledger
	fmt.Fprintf(&b, "  ledger       %d voter ids, votes %d acknowledged / %d unknown / %d refused; orders %d acknowledged / %d unknown\n",
		c.Voters, c.VotesAcked, c.VotesUnknown, c.VotesRejected, c.OrdersAcked, c.OrdersUnknown)
	if rep.Starved > 0 {
		fmt.Fprintf(&b, "  note         %d requests waited for a free voter: raise --voters above the requests in flight\n", rep.Starved)
	}
	for _, st := range rep.Steps {
		mark := "ok  "
		if !st.Pass {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  step %s %6.0f/s for %.0fs: %.0f req/s, p99 %.2f ms, errors %d  %s\n", mark, st.Rate, st.Duration,
			st.Summary.Rate, st.Summary.Latency.P99, st.Summary.Errors, st.Why)
	}
	if rep.Mode == ModeMax {
		fmt.Fprintf(&b, "  max rate     %.0f/s holds %s\n", rep.MaxRate, rep.Objective)
	}
	return b.String()
}

// Text renders the verdict.
func (v Verdict) Text(drain time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify: drained in %s; %d voter ids and %d order ids checked\n", drain.Round(time.Millisecond), v.VotersChecked, v.OrdersChecked)
	fmt.Fprintf(&b, "  results      %d counted (audit %d rows, %d of other clients); orders %d confirmed (%d units) / %d rejected\n",
		v.CountsTotal, v.AuditVotesTotal, v.ForeignVotes, v.Confirmed, v.UnitsConfirmed, v.Rejected)
	fmt.Fprintf(&b, "  unknown      votes %d (%d counted), orders %d (%d applied)\n",
		v.UnknownVotes, v.UnknownVotesCounted, v.UnknownOrders, v.UnknownOrdersApplied)
	fmt.Fprintf(&b, "  lost=%d duplicated=%d oversold=%d unexpected=%d\n", v.Lost, v.Duplicated, v.Oversold, v.Unexpected)
	for _, p := range v.Problems {
		fmt.Fprintf(&b, "  ! %s\n", p)
	}
	return b.String()
}

func (r *runner) writeFiles() error {
	rep := r.report
	if path := r.cfg.PlotPath; path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := Plot(rep, path); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		rep.PlotPath = path
		fmt.Fprintf(r.out, "plot: %s\n", path)
	}
	if path := r.cfg.JSONPath; path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(r.out, "report: %s\n", path)
	}
	return nil
}
