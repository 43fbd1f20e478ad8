package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Step is one rate tried in max mode.
type Step struct {
	Rate     float64 `json:"rate"`
	Duration float64 `json:"duration_s"`
	Summary  Summary `json:"summary"`
	Pass     bool    `json:"pass"`
	Why      string  `json:"why,omitempty"`
}

// Report is every figure of a run.
type Report struct {
	Tool      string    `json:"tool"`
	RunID     string    `json:"run_id"`
	Started   time.Time `json:"started"`
	Target    string    `json:"target"`
	Mode      string    `json:"mode"`
	Rate      float64   `json:"rate"` // asked for; 0 = as fast as possible
	Duration  float64   `json:"duration_s"`
	Bound     int64     `json:"max_requests"`
	Conns     int       `json:"connections"`
	Voters    int       `json:"voters"`
	Change    float64   `json:"change_ratio"`
	OrderMix  float64   `json:"order_ratio"`
	Poll      string    `json:"poll"`
	Choices   []string  `json:"choices"`
	Exclusive bool      `json:"poll_created_by_run"`
	Items     []ItemRef `json:"items,omitempty"`

	Summary   Summary `json:"summary"`
	Steps     []Step  `json:"steps,omitempty"`
	Objective string  `json:"objective,omitempty"`
	MaxRate   float64 `json:"max_rate,omitempty"` // max mode: the highest rate that held the objective
	Starved   int64   `json:"starved_ticks"`      // ticks that waited for a free voter
	Ledger    Counts  `json:"ledger"`

	DrainSeconds float64  `json:"drain_s,omitempty"`
	Verdict      *Verdict `json:"verify,omitempty"`
	JSONPath     string   `json:"-"`
	PlotPath     string   `json:"plot,omitempty"`
}

// ItemRef is an item the run created.
type ItemRef struct {
	ID    int64 `json:"id"`
	Stock int64 `json:"stock"`
}

// VerifyError is returned when the verifier finds anything lost,
// duplicated, oversold or unexpected.
type VerifyError struct{ Verdict Verdict }

func (e *VerifyError) Error() string {
	v := e.Verdict
	return fmt.Sprintf("verify failed: lost=%d duplicated=%d oversold=%d unexpected=%d", v.Lost, v.Duplicated, v.Oversold, v.Unexpected)
}

type runner struct {
	cfg       Config
	base      *url.URL
	transport *http.Transport
	items     []int64
	out       io.Writer
	api       *api
	load      *http.Client
	work      *Workload
	stats     *Stats
	ledger    *Ledger
	report    *Report
	progress  *progress
}

// Run sets up (items, a poll), loads the target, reports, and verifies if
// asked. The report is written to out as text and to the configured files.
// A verification that finds anomalies returns the report and a *VerifyError.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	r, err := newRunner(ctx, cfg, out)
	if err != nil {
		return nil, err
	}
	return r.run(ctx)
}

// newRunner checks the configuration and builds the clients.
func newRunner(ctx context.Context, cfg Config, out io.Writer) (*runner, error) {
	if err := cfg.Validate(ctx); err != nil {
		return nil, err
	}
	base, err := url.Parse(strings.TrimRight(cfg.Target, "/"))
	if err != nil {
		return nil, err
	}
	adminURL, resultsURL := base, base
	if cfg.AdminURL != "" {
		if adminURL, err = url.Parse(strings.TrimRight(cfg.AdminURL, "/")); err != nil {
			return nil, err
		}
	}
	if cfg.ResultsURL != "" {
		if resultsURL, err = url.Parse(strings.TrimRight(cfg.ResultsURL, "/")); err != nil {
			return nil, err
		}
	}
	if cfg.Verify && cfg.AdminPass == "" {
		return nil, errors.New("--verify reads the admin audit API: give --admin-password or SURGE_ADMIN_PASSWORD_FILE")
	}
	if cfg.OrderRatio > 0 && cfg.AdminPass == "" {
		return nil, errors.New("orders need items created through the admin API: give --admin-password or SURGE_ADMIN_PASSWORD_FILE, or --orders 0")
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Connections + 16,
		MaxIdleConnsPerHost: cfg.Connections + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	r := &runner{cfg: cfg, out: out, ledger: NewLedger(), base: base, transport: transport,
		api: &api{client: &http.Client{Transport: transport, Timeout: time.Minute, CheckRedirect: noRedirect},
			base: base, admin: adminURL, results: resultsURL, user: cfg.AdminUser, password: cfg.AdminPass}}
	runID := newRunID()
	r.report = &Report{Tool: "surge load", RunID: runID, Started: time.Now().UTC(), Target: base.String(), Mode: cfg.Mode,
		Rate: cfg.Rate, Duration: cfg.Duration.Seconds(), Bound: cfg.MaxRequests, Conns: cfg.Connections,
		Voters: cfg.Voters, Change: cfg.ChangeRatio, OrderMix: cfg.OrderRatio, JSONPath: cfg.JSONPath}
	return r, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (r *runner) run(ctx context.Context) (*Report, error) {
	cfg := r.cfg
	defer r.transport.CloseIdleConnections()
	runID := r.report.RunID

	// Setup: the poll and the items.
	poll, choices := cfg.Poll, cfg.Choices
	switch {
	case poll == "" && cfg.AdminPass != "":
		poll = "load-" + runID
		if len(choices) == 0 {
			choices = []string{"red", "green", "blue"}
		}
		if err := r.api.createPoll(ctx, poll, choices); err != nil {
			return nil, err
		}
		r.report.Exclusive = true
	case poll == "":
		poll = "cats-vs-dogs"
	}
	if len(choices) == 0 {
		res, err := r.api.pollResults(ctx, poll)
		if err != nil {
			return nil, fmt.Errorf("poll %s: cannot read its options (give --choices): %w", poll, err)
		}
		for c := range res.Counts {
			choices = append(choices, c)
		}
		slices.Sort(choices)
	}
	if len(choices) < 2 {
		return nil, fmt.Errorf("poll %s: need at least 2 choices, have %v", poll, choices)
	}
	r.report.Poll, r.report.Choices = poll, choices
	if cfg.OrderRatio > 0 {
		for i := range cfg.Items {
			it, err := r.api.createItem(ctx, fmt.Sprintf("surge load %s #%d", runID, i+1), cfg.Stock)
			if err != nil {
				return nil, err
			}
			r.items = append(r.items, it.ID)
			r.ledger.Stock[it.ID] = cfg.Stock
			r.report.Items = append(r.report.Items, ItemRef{ID: it.ID, Stock: cfg.Stock})
		}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}

	// The load.
	r.stats = NewStats(time.Now())
	r.work = NewWorkload(r.base, WorkloadConfig{Voters: cfg.Voters, ChangeRatio: cfg.ChangeRatio, Poll: poll, Choices: choices,
		OrderRatio: cfg.OrderRatio, RepeatRatio: cfg.RepeatRatio, Items: r.items, MaxQuantity: cfg.MaxQuantity, CartLines: cfg.CartLines,
		Prefix: "load-" + runID + "-", Seed: seed}, r.ledger, r.stats, r.transport)
	r.load = &http.Client{Transport: r.work, Timeout: cfg.Timeout, CheckRedirect: noRedirect}
	r.progress = newProgress(cfg, r.stats)
	switch cfg.Mode {
	case ModeMax:
		r.findMax(ctx)
	default:
		r.attack(ctx, cfg.Rate, cfg.Duration, cfg.MaxRequests)
	}
	r.work.Close()
	r.progress.finish()
	r.report.Summary = r.stats.Summary(true)
	r.report.Starved = r.work.Starved()
	r.report.Ledger = r.ledger.Counts()
	fmt.Fprint(r.out, r.report.Text())

	var verifyErr error
	if cfg.Verify && ctx.Err() == nil {
		verifyErr = r.verify(ctx)
	}
	if err := r.writeFiles(); err != nil {
		return r.report, errors.Join(verifyErr, err)
	}
	if ctx.Err() != nil {
		return r.report, ctx.Err()
	}
	return r.report, verifyErr
}

func newRunID() string {
	b := make([]byte, 2)
	rand.Read(b)
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

// budgetPacer paces like its inner pacer and stops after budget hits.
type budgetPacer struct {
	inner  vegeta.ConstantPacer
	budget int64
}

func (p budgetPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if int64(hits) >= p.budget {
		return 0, true
	}
	return p.inner.Pace(elapsed, hits)
}

func (p budgetPacer) Rate(elapsed time.Duration) float64 { return p.inner.Rate(elapsed) }

// pacer paces at rate (0: as fast as the workers go) and stops after
// budget hits.
func pacer(rate float64, budget int64) vegeta.Pacer {
	p := budgetPacer{budget: budget} // the zero ConstantPacer is an infinite rate
	switch {
	case rate >= 1:
		p.inner = vegeta.ConstantPacer{Freq: int(math.Round(rate)), Per: time.Second}
	case rate > 0:
		p.inner = vegeta.ConstantPacer{Freq: 1, Per: time.Duration(float64(time.Second) / rate)}
	}
	return p
}

// attack runs one paced attack and returns how many requests it sent.
func (r *runner) attack(ctx context.Context, rate float64, dur time.Duration, budget int64) int64 {
	workers := uint64(r.cfg.Connections)
	if rate > 0 {
		workers = min(workers, uint64(math.Ceil(rate/100))+8)
	}
	atk := vegeta.NewAttacker(vegeta.Client(r.load), vegeta.Workers(workers), vegeta.MaxWorkers(uint64(r.cfg.Connections)))
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-r.cfg.Stop:
		case <-done:
			return
		}
		atk.Stop()
		r.work.Close()
	}()
	var sent int64
	for res := range atk.Attack(r.work.Targeter(), pacer(rate, budget), dur, "surge-load") {
		if res.Error != errClosed.Error() {
			sent++
		}
	}
	return sent
}

// findMax steps the rate up, doubling while the objective holds, then
// bisects between the best passing rate and the first failing one. Every
// step counts against the run's duration and request bounds.
func (r *runner) findMax(ctx context.Context) {
	cfg := r.cfg
	deadline := time.Now().Add(cfg.Duration)
	budget := cfg.MaxRequests
	rate, good, bad := cfg.StartRate, 0.0, 0.0
	r.report.Objective = fmt.Sprintf("p%g <= %s, errors <= %.2g%%, achieved >= 90%% of the rate", cfg.ObjectiveQ, cfg.Objective, cfg.MaxErrorRatio*100)
	for ctx.Err() == nil && !r.stopped() {
		left := time.Until(deadline)
		dur := min(cfg.StepDuration, left)
		if dur < cfg.StepDuration/2 || dur < time.Second {
			break
		}
		if float64(budget) < rate*dur.Seconds() {
			break // the step would run out of requests half way
		}
		step := NewStats(time.Now())
		r.work.step.Store(step)
		r.progress.setStep(rate)
		budget -= r.attack(ctx, rate, dur, budget)
		r.work.step.Store(nil)
		s := step.Summary(false)
		st := Step{Rate: rate, Duration: dur.Seconds(), Summary: s, Pass: true}
		q := quantileOf(s.Latency, cfg.ObjectiveQ)
		switch {
		case s.Requests == 0:
			st.Pass, st.Why = false, "no requests"
		case q > float64(cfg.Objective)/float64(time.Millisecond):
			st.Pass, st.Why = false, fmt.Sprintf("p%g %.1f ms > %s", cfg.ObjectiveQ, q, cfg.Objective)
		case float64(s.Errors) > cfg.MaxErrorRatio*float64(s.Requests):
			st.Pass, st.Why = false, fmt.Sprintf("%d errors of %d", s.Errors, s.Requests)
		case float64(s.Requests) < 0.9*rate*dur.Seconds():
			st.Pass, st.Why = false, fmt.Sprintf("sent %.0f/s of %.0f/s", float64(s.Requests)/dur.Seconds(), rate)
		}
		r.report.Steps = append(r.report.Steps, st)
		r.progress.stepLine(st)
		if st.Pass {
			good = max(good, rate)
		} else {
			bad = rate
		}
		switch {
		case bad == 0:
			rate *= 2
		case good == 0:
			rate = bad / 2
			if rate < 1 {
				return
			}
		default:
			if (bad-good)/bad <= cfg.Precision {
				r.report.MaxRate = good
				return
			}
			rate = math.Round((good + bad) / 2)
		}
		r.report.MaxRate = good
		// Let the queues of the step before settle a moment.
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// stopped reports whether cfg.Stop is closed.
func (r *runner) stopped() bool {
	select {
	case <-r.cfg.Stop:
		return true
	default:
		return false
	}
}

// quantileOf picks the figure of a latency summary for a percentile.
func quantileOf(l Latency, q float64) float64 {
	switch {
	case q <= 50:
		return l.P50
	case q <= 90:
		return l.P90
	case q <= 99:
		return l.P99
	case q <= 99.9:
		return l.P999
	}
	return l.Max
}

// verify waits for the queues to drain and compares the ledger with what
// the system counted.
func (r *runner) verify(ctx context.Context) error {
	poll, items := r.report.Poll, r.items
	fmt.Fprintf(r.out, "\nverify: waiting for the queues to drain (at most %s)...\n", r.cfg.DrainTimeout)
	last := time.Time{}
	drained, took, err := r.api.waitDrained(ctx, r.cfg.DrainTimeout, func(b Backlog) {
		if time.Since(last) > 2*time.Second {
			fmt.Fprintf(r.out, "verify: %d entries still queued\n", b.Entries())
			last = time.Now()
		}
	})
	r.report.DrainSeconds = took.Seconds()
	if err != nil {
		return err
	}
	// Drained means the result replica that answered serves every applied
	// vote; another replica may be up to one push interval behind, which
	// its seq shows, so wait (briefly) for results at the drain's
	// watermark. On a poll of its own the run is then done: counts that
	// differ from the audit are a finding, read once. On a shared poll,
	// other clients' votes may land between the two reads: give them a few
	// seconds to agree; a difference that stays is reported by the verdict.
	var res pollResults
	var votes []AuditVote
	for deadline := time.Now().Add(5 * time.Second); ; {
		if res, err = r.api.pollResults(ctx, poll); err != nil {
			return err
		}
		caughtUp := res.Seq >= drained.Seq[poll]
		if caughtUp {
			if votes, err = r.api.auditVotes(ctx, poll); err != nil {
				return err
			}
		}
		if caughtUp && (r.report.Exclusive || countsAgree(res.Counts, votes)) {
			break
		}
		if time.Now().After(deadline) {
			if !caughtUp {
				return fmt.Errorf("verify: the results stayed at commit %d of poll %s, behind the drained queues' %d", res.Seq, poll, drained.Seq[poll])
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	obs := Observed{Counts: res.Counts, Votes: votes, Exclusive: r.report.Exclusive, Stock: map[int64]int64{}}
	if len(items) > 0 || len(r.ledger.Orders) > 0 {
		orders, err := r.api.auditOrders(ctx)
		if err != nil {
			return err
		}
		prefix := "load-" + r.report.RunID + "-"
		for _, o := range orders {
			if strings.HasPrefix(o.OrderID, prefix) || slices.ContainsFunc(o.OrderLines(), func(l OrderLine) bool { return slices.Contains(items, l.Item) }) {
				obs.Orders = append(obs.Orders, o)
			}
		}
		all, err := r.api.items(ctx)
		if err != nil {
			return err
		}
		for _, it := range all {
			if slices.Contains(items, it.ID) {
				obs.Stock[it.ID] = it.Quantity
			}
		}
	}
	v := Verify(r.ledger, obs)
	r.report.Verdict = &v
	fmt.Fprint(r.out, v.Text(took))
	if !v.OK() {
		return &VerifyError{Verdict: v}
	}
	return nil
}

// countsAgree reports whether the results' counts equal the audited votes.
func countsAgree(counts map[string]int64, votes []AuditVote) bool {
	tally := map[string]int64{}
	for _, v := range votes {
		tally[v.Choice]++
	}
	for c, n := range counts {
		if tally[c] != n {
			return false
		}
	}
	for c, n := range tally {
		if counts[c] != n {
			return false
		}
	}
	return true
}
