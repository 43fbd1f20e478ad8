package main

import (
	"fmt"
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

	Notes []string `json:"notes,omitempty"`
}

// PhaseInfo records how long a phase took and how noisy the machine was.
type PhaseInfo struct {
	Name     string  `json:"name"`
	Seconds  float64 `json:"seconds"`
	StealPct float64 `json:"cpu_steal_pct"`
	LoadAvg  string  `json:"load_average_after"`
	// Share of the phase during which some task waited for the CPU, or for
	// I/O (Linux pressure stall information): other work on the machine
	// shows here.
	CPUPressure float64 `json:"cpu_pressure_pct"`
	IOPressure  float64 `json:"io_pressure_pct"`
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
		phases = append(phases, fmt.Sprintf("%s %.0f s (load average after %s; some task waiting for CPU %.0f%%, for I/O %.0f%% of the time)",
			p.Name, p.Seconds, p.LoadAvg, p.CPUPressure, p.IOPressure))
	}
	fmt.Fprintf(&b, "Load average at start %s; CPU steal over the run %.1f%%; phases: %s. %d rounds per figure (median, spread min–max); %d connections, %.0f s per throughput measurement; `make bench` took %.0f s.\n\n",
		m.LoadAvg, r.StealPct, strings.Join(phases, ", "), r.Rounds, r.Connections, r.MeasureSeconds, r.Seconds)
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
