package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
)

// Figure is one measured quantity over the rounds: the median and the
// spread (min to max), with every round kept.
type Figure struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Rounds []float64 `json:"rounds"`
	Unit   string    `json:"unit"`
}

func figure(unit string, xs []float64) Figure {
	f := Figure{Unit: unit, Rounds: xs}
	if len(xs) == 0 {
		return f
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	f.Min, f.Max = s[0], s[len(s)-1]
	if n := len(s); n%2 == 1 {
		f.Median = s[n/2]
	} else {
		f.Median = (s[n/2-1] + s[n/2]) / 2
	}
	return f
}

// figures makes a figure of each named series.
func figures(unit string, m map[string][]float64) map[string]Figure {
	out := make(map[string]Figure, len(m))
	for name, xs := range m {
		out[name] = figure(unit, xs)
	}
	return out
}

// ratios divides round by round.
func ratios(a, b []float64) []float64 {
	out := make([]float64, 0, len(a))
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// Ratio is a compared pair with its target.
type Ratio struct {
	Ratio  Figure `json:"ratio"`
	Target string `json:"target"`
	Pass   bool   `json:"pass"`
}

// Results is every figure of `make bench`.
type Results struct {
	Date           string      `json:"date"`
	Machine        Machine     `json:"machine"`
	Rounds         int         `json:"rounds"`
	MeasureSeconds float64     `json:"measure_s"`
	Connections    int         `json:"connections"`
	Seconds        float64     `json:"total_s"`
	StealPct       float64     `json:"cpu_steal_pct"`
	Phases         []PhaseInfo `json:"phases"`

	Capture struct {
		Web    Figure `json:"web_acked_per_s"` // 1 frontend + its Redis (AOF always)
		Bare   Figure `json:"bare_gin_per_s"`  // bare Gin, 202, no work
		Errors int64  `json:"web_errors"`      // non-2xx answers of the frontend
		Ratio
		// CPU per acknowledged request, µs, by process (and the load tool).
		CPUWeb   map[string]Figure `json:"cpu_us_per_request_web"`
		CPUBare  map[string]Figure `json:"cpu_us_per_request_bare"`
		RedisP1  Figure            `json:"redis_benchmark_xadd_p1"`
		RedisP16 Figure            `json:"redis_benchmark_xadd_p16"`
	} `json:"capture"`

	HAProxy struct {
		Web    Figure `json:"web_acked_per_s"` // 2 frontends + 2 Redis behind HAProxy
		Bare   Figure `json:"bare_gin_per_s"`  // 2 bare Gin behind the same HAProxy config
		Errors int64  `json:"web_errors"`
		Ratio
		CPUWeb  map[string]Figure `json:"cpu_us_per_request_web"`
		CPUBare map[string]Figure `json:"cpu_us_per_request_bare"`
	} `json:"haproxy_2_shards"`

	Drain struct {
		Votes      int    `json:"votes"`
		Voters     int    `json:"voters"`
		Shards     int    `json:"shards"`
		Workers    int    `json:"workers"`
		BatchSize  string `json:"worker_batch_size"`
		DroppedFK  bool   `json:"foreign_key_dropped,omitempty"` // a diagnosis run, not the schema
		Prefill    Figure `json:"prefill_per_s"`
		Worker     Figure `json:"workers_votes_per_s"`
		CopyMerge  Figure `json:"copy_merge_rows_per_s"`
		CopyOnly   Figure `json:"copy_rows_per_s"`
		MergeOnly  Figure `json:"merge_rows_per_s"`
		Naive      Figure `json:"naive_upsert_8_clients_per_s"`
		Naive1     Figure `json:"naive_upsert_1_client_per_s"`
		VsCopy     Ratio  `json:"workers_vs_copy_merge"`
		VsNaive    Ratio  `json:"workers_vs_naive"`
		VsNaive1   Figure `json:"workers_vs_naive_1_client"`
		CheckedOut bool   `json:"counts_checked"` // every round's counts equal the deduplicated backlog
		// CPU per vote, µs, by process: the workers' way (workers, Redis,
		// Postgres backends) and COPY + merge (Postgres backend, the client).
		CPUWorkers map[string]Figure `json:"cpu_us_per_vote_workers"`
		CPUCopy    map[string]Figure `json:"cpu_us_per_vote_copy_merge"`
	} `json:"drain"`

	Cluster struct {
		MaxRate    Figure `json:"max_capture_per_s"`           // through HAProxy, 2 shards, 2 workers draining
		RateTarget Figure `json:"freshness_load_target_per_s"` // half the round's max
		Rate       Figure `json:"freshness_load_per_s"`        // what was acknowledged
		FreshP50   Figure `json:"freshness_p50_ms"`
		FreshP99   Figure `json:"freshness_p99_ms"`
		FreshMax   Figure `json:"freshness_max_ms"`
		Samples    []int  `json:"freshness_samples"`
		FreshCheck Ratio  `json:"freshness"`
		WebRSS     Figure `json:"web_peak_rss_mb"`
		WorkerRSS  Figure `json:"worker_peak_rss_mb"`
		Errors     int64  `json:"errors"`
	} `json:"cluster"`

	// Copies is what the second copy of every entry costs (package
	// copies), each side against one copy.
	Copies struct {
		Shards  int `json:"shards"`
		Capture struct {
			Two       Figure `json:"two_copies_acked_per_s"` // 1 frontend, 3 shards, copies = 2
			One       Figure `json:"one_copy_acked_per_s"`   // the same, copies = 1
			ErrorsTwo int64  `json:"two_copies_errors"`
			ErrorsOne int64  `json:"one_copy_errors"`
			Ratio
			CPUTwo map[string]Figure `json:"cpu_us_per_request_two_copies"`
			CPUOne map[string]Figure `json:"cpu_us_per_request_one_copy"`
		} `json:"capture"`
		Drain struct {
			Votes   int    `json:"votes"`
			Voters  int    `json:"voters"`
			Workers int    `json:"workers"`
			Two     Figure `json:"two_copies_votes_per_s"` // every vote on two shards: twice the entries
			One     Figure `json:"one_copy_votes_per_s"`
			Ratio   Figure `json:"ratio"` // no target: what it costs
			// Second copies the workers acknowledged from memory; the others
			// went to Postgres, which ignored them.
			Skipped    Figure            `json:"copies_skipped"`
			CheckedOut bool              `json:"counts_checked"`
			CPUTwo     map[string]Figure `json:"cpu_us_per_vote_two_copies"`
			CPUOne     map[string]Figure `json:"cpu_us_per_vote_one_copy"`
		} `json:"drain"`
	} `json:"copies"`

	// Only names the phases this run measured when it did not run them all;
	// the others' figures are kept from the results file as it was.
	Only  []string `json:"only,omitempty"`
	Notes []string `json:"notes,omitempty"` // each starts with its phase's name
}

// PhaseInfo records how long a phase took and how noisy the machine was.
type PhaseInfo struct {
	Name     string  `json:"name"`
	Date     string  `json:"date,omitempty"` // of the run that measured it
	Rounds   int     `json:"rounds,omitempty"`
	Seconds  float64 `json:"seconds"`
	StealPct float64 `json:"cpu_steal_pct"`
	LoadAvg  string  `json:"load_average_after"`
	// Share of the phase during which some task waited for the CPU, or for
	// I/O (Linux pressure stall information): other work on the machine
	// shows here.
	CPUPressure float64 `json:"cpu_pressure_pct"`
	IOPressure  float64 `json:"io_pressure_pct"`
}

// sections copy one phase's figures from src to dst, by phase name.
var sections = map[string]func(dst, src *Results){
	"capture": func(dst, src *Results) { dst.Capture = src.Capture },
	"haproxy": func(dst, src *Results) { dst.HAProxy = src.HAProxy },
	"drain":   func(dst, src *Results) { dst.Drain = src.Drain },
	"cluster": func(dst, src *Results) { dst.Cluster = src.Cluster },
	"copies":  func(dst, src *Results) { dst.Copies = src.Copies },
}

// keep takes the figures, phase record and notes of each phase this run
// does not measure from the results file at path (if there is one), so
// that a run of some phases updates theirs and leaves the others as they
// were last measured.
func (r *Results) keep(path string, run map[string]bool) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var old Results
	if err := json.Unmarshal(data, &old); err != nil {
		return fmt.Errorf("keep the other phases' results: %s: %w", path, err)
	}
	for _, p := range old.Phases {
		if run[p.Name] || sections[p.Name] == nil {
			continue
		}
		sections[p.Name](r, &old)
		// Files written before phases had their own date and rounds.
		p.Date, p.Rounds = cmp.Or(p.Date, old.Date), cmp.Or(p.Rounds, old.Rounds)
		r.Phases = append(r.Phases, p)
	}
	for _, n := range old.Notes {
		if name, _, _ := strings.Cut(n, " "); !run[strings.TrimRight(name, ",:")] {
			r.Notes = append(r.Notes, n)
		}
	}
	return nil
}

// evaluate sets the ratios and their verdicts from the measured figures.
func (r *Results) evaluate() {
	c := &r.Capture
	c.Ratio = Ratio{Ratio: figure("×", ratios(c.Web.Rounds, c.Bare.Rounds)), Target: "≥ 0.7"}
	c.Pass = len(c.Ratio.Ratio.Rounds) > 0 && c.Ratio.Ratio.Median >= 0.7
	h := &r.HAProxy
	h.Ratio = Ratio{Ratio: figure("×", ratios(h.Web.Rounds, h.Bare.Rounds)), Target: "≥ 0.7"}
	h.Pass = len(h.Ratio.Ratio.Rounds) > 0 && h.Ratio.Ratio.Median >= 0.7
	d := &r.Drain
	d.VsCopy = Ratio{Ratio: figure("×", ratios(d.Worker.Rounds, d.CopyMerge.Rounds)), Target: "≥ 0.5"}
	d.VsCopy.Pass = len(d.VsCopy.Ratio.Rounds) > 0 && d.VsCopy.Ratio.Median >= 0.5
	d.VsNaive = Ratio{Ratio: figure("×", ratios(d.Worker.Rounds, d.Naive.Rounds)), Target: "≥ 30"}
	d.VsNaive.Pass = len(d.VsNaive.Ratio.Rounds) > 0 && d.VsNaive.Ratio.Median >= 30
	d.VsNaive1 = figure("×", ratios(d.Worker.Rounds, d.Naive1.Rounds))
	cp := &r.Copies.Capture
	cp.Ratio = Ratio{Ratio: figure("×", ratios(cp.Two.Rounds, cp.One.Rounds)), Target: "≥ 0.8"}
	cp.Pass = len(cp.Ratio.Ratio.Rounds) > 0 && cp.Ratio.Ratio.Median >= 0.8
	r.Copies.Drain.Ratio = figure("×", ratios(r.Copies.Drain.Two.Rounds, r.Copies.Drain.One.Rounds))
	k := &r.Cluster
	k.FreshCheck = Ratio{Ratio: k.FreshP99, Target: "p99 ≤ 1000 ms"}
	k.FreshCheck.Pass = len(k.FreshP99.Rounds) > 0 && k.FreshP99.Median <= 1000
}

// show renders the median with its unit, then the spread.
func (f Figure) show(unit string) string {
	if len(f.Rounds) == 0 {
		return "not measured"
	}
	format := func(x float64) string {
		switch {
		case f.Unit == "×" && x < 10:
			return fmt.Sprintf("%.3f", x)
		case x >= 100:
			return fmt.Sprintf("%.0f", x)
		default:
			return fmt.Sprintf("%.1f", x)
		}
	}
	return fmt.Sprintf("%s%s (%s–%s)", format(f.Median), unit, format(f.Min), format(f.Max))
}

func verdict(r Ratio) string {
	switch {
	case len(r.Ratio.Rounds) == 0:
		return ""
	case r.Pass:
		return "met"
	}
	return "**missed**"
}

// Table is the short Markdown table for bench/README.md.
func (r *Results) Table() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Measured %s on %s (%d cores, %.0f GB RAM, %s), kernel %s, %s; %s; %s; %s.\n",
		r.Date, m.CPU, m.Cores, m.MemoryGB, orDash(m.Virtual), m.Kernel, m.Go, m.Redis, m.Postgres, m.HAProxy)
	var phases []string
	for _, p := range r.Phases {
		var earlier string // a phase kept from an earlier run
		if p.Date != "" && p.Date != r.Date {
			earlier = fmt.Sprintf("measured %s, %d rounds; ", p.Date, p.Rounds)
		}
		phases = append(phases, fmt.Sprintf("%s %.0f s (%sload average after %s; some task waiting for CPU %.0f%%, for I/O %.0f%% of the time)",
			p.Name, p.Seconds, earlier, p.LoadAvg, p.CPUPressure, p.IOPressure))
	}
	took := fmt.Sprintf("`make bench` took %.0f s", r.Seconds)
	if len(r.Only) > 0 {
		took = fmt.Sprintf("this run measured only %s, in %.0f s; the other phases' figures are kept from the earlier run dated with each",
			strings.Join(r.Only, ", "), r.Seconds)
	}
	fmt.Fprintf(&b, "Load average at start %s; CPU steal over the run %.1f%%; phases: %s. %d rounds per figure (median, spread min–max); %d connections, %.0f s per throughput measurement; %s.\n\n",
		m.LoadAvg, r.StealPct, strings.Join(phases, ", "), r.Rounds, r.Connections, r.MeasureSeconds, took)
	b.WriteString("| figure | median (min–max) | target | |\n|---|---|---|---|\n")
	row := func(name string, f Figure, unit, target, v string) {
		value := f.show(unit)
		if f.Unit == "" { // a line of explanation, no figure
			value = ""
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, value, target, v)
	}
	c := r.Capture
	row("**capture ratio**: 1 frontend + Redis (AOF always) ÷ bare Gin", c.Ratio.Ratio, "×", c.Target, verdict(c.Ratio))
	row(fmt.Sprintf("&nbsp;&nbsp;frontend + Redis, acknowledged votes (%d errors)", c.Errors), c.Web, "/s", "", "")
	row("&nbsp;&nbsp;bare Gin 202", c.Bare, "/s", "", "")
	row("&nbsp;&nbsp;CPU per acknowledged request: "+cpuLine(c.CPUWeb)+"; bare: "+cpuLine(c.CPUBare), Figure{}, "", "", "")
	row("&nbsp;&nbsp;redis-benchmark XADD, no pipelining", c.RedisP1, "/s", "", "")
	row("&nbsp;&nbsp;redis-benchmark XADD, pipeline 16", c.RedisP16, "/s", "", "")
	h := r.HAProxy
	row("**through HAProxy, 2 shards** ÷ 2 bare Gin behind the same HAProxy", h.Ratio.Ratio, "×", h.Target, verdict(h.Ratio))
	row(fmt.Sprintf("&nbsp;&nbsp;2 frontends + 2 Redis (%d errors)", h.Errors), h.Web, "/s", "", "")
	row("&nbsp;&nbsp;2 bare Gin", h.Bare, "/s", "", "")
	row("&nbsp;&nbsp;CPU per acknowledged request: "+cpuLine(h.CPUWeb)+"; bare: "+cpuLine(h.CPUBare), Figure{}, "", "", "")
	d := r.Drain
	row(fmt.Sprintf("**drain**: workers ÷ COPY + merge (%d votes, %d voters, %d shards, %d workers)", d.Votes, d.Voters, d.Shards, d.Workers),
		d.VsCopy.Ratio, "×", d.VsCopy.Target, verdict(d.VsCopy))
	row("**drain**: workers ÷ one-row upsert loop (8 clients)", d.VsNaive.Ratio, "×", d.VsNaive.Target, verdict(d.VsNaive))
	row("&nbsp;&nbsp;workers, committed votes (dedup + counts, synchronous commit)", d.Worker, "/s", "", "")
	row("&nbsp;&nbsp;COPY into staging + merge", d.CopyMerge, " rows/s", "", "")
	row("&nbsp;&nbsp;one-row upsert loop, 8 clients", d.Naive, " rows/s", "", "")
	row("&nbsp;&nbsp;one-row upsert loop, 1 client", d.Naive1, " rows/s", "", "")
	row("&nbsp;&nbsp;CPU per vote: workers' way "+cpuLine(d.CPUWorkers)+"; COPY + merge "+cpuLine(d.CPUCopy), Figure{}, "", "", "")
	k := r.Cluster
	row(fmt.Sprintf("**freshness**: 202 → visible in /results/api, p99, at half the max capture rate (asked %s, acknowledged %s)",
		k.RateTarget.show("/s"), k.Rate.show("/s")), k.FreshP99, " ms", k.FreshCheck.Target, verdict(k.FreshCheck))
	row(fmt.Sprintf("&nbsp;&nbsp;max capture rate through HAProxy (2 shards, 2 workers draining; %d errors)", k.Errors), k.MaxRate, "/s", "", "")
	row("**memory**: peak RSS of a web under max load", k.WebRSS, " MB", "", "")
	row("**memory**: peak RSS of a worker under max load", k.WorkerRSS, " MB", "", "")
	cc, cd := r.Copies.Capture, r.Copies.Drain
	row(fmt.Sprintf("**copies, capture**: 1 frontend on %d shards (AOF always), 2 copies ÷ 1 copy", r.Copies.Shards),
		cc.Ratio.Ratio, "×", cc.Target, verdict(cc.Ratio))
	row(fmt.Sprintf("&nbsp;&nbsp;2 copies, acknowledged votes (%d errors)", cc.ErrorsTwo), cc.Two, "/s", "", "")
	row(fmt.Sprintf("&nbsp;&nbsp;1 copy, acknowledged votes (%d errors)", cc.ErrorsOne), cc.One, "/s", "", "")
	row("&nbsp;&nbsp;CPU per acknowledged request: 2 copies "+cpuLine(cc.CPUTwo)+"; 1 copy "+cpuLine(cc.CPUOne), Figure{}, "", "", "")
	row(fmt.Sprintf("**copies, drain**: 2 copies ÷ 1 copy, votes committed per second (%d votes, %d voters, %d shards, %d workers)",
		cd.Votes, cd.Voters, r.Copies.Shards, cd.Workers), cd.Ratio, "×", "", "")
	row("&nbsp;&nbsp;2 copies (twice the entries)", cd.Two, "/s", "", "")
	row("&nbsp;&nbsp;1 copy", cd.One, "/s", "", "")
	row("&nbsp;&nbsp;second copies the workers skipped from memory (the rest went to Postgres, which ignored them)", cd.Skipped, "", "", "")
	row("&nbsp;&nbsp;CPU per vote: 2 copies "+cpuLine(cd.CPUTwo)+"; 1 copy "+cpuLine(cd.CPUOne), Figure{}, "", "", "")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	b.WriteString("\n")
	return b.String()
}

// cpuLine sums the median CPU of each process: "web 40 + redis 7 + load
// tool 46 = 93 µs".
func cpuLine(m map[string]Figure) string {
	if len(m) == 0 {
		return "not measured"
	}
	var parts []string
	var total float64
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k].Median))
		total += m[k].Median
	}
	return fmt.Sprintf("%s = %.0f µs", strings.Join(parts, " + "), total)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

const (
	beginMark = "<!-- bench:begin (written by make bench) -->"
	endMark   = "<!-- bench:end -->"
)

// updateReadme replaces the results between the markers, keeping the rest
// of the file (the explanations) as it is.
func updateReadme(path, table string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	i, j := strings.Index(text, beginMark), strings.Index(text, endMark)
	block := beginMark + "\n" + table + endMark
	if i < 0 || j < i {
		text = "# surge benchmarks\n\n" + block + "\n"
	} else {
		text = text[:i] + block + text[j+len(endMark):]
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
