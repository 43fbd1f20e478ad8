// Command bench is `make bench`: surge's performance ratios measured side by
// side in one run on this machine, each the median of several rounds with
// its spread, written to bench/results.json and as a table to
// bench/README.md.
//
//	go run ./bench --bin .surge/bin      (needs web, worker, result and bare there)
//
// Every server it loads is a process it started on loopback; every load is
// bounded in time and count.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	bin         string
	dir         string
	out         string
	readme      string
	rounds      int
	measure     time.Duration // each throughput measurement
	votes       int           // drain backlog
	copiesVotes int           // the copies phase's drain backlog
	conns       int
	drainBatch  int  // SURGE_BATCH_SIZE for the drain's workers; 0 = the worker's default
	dropFK      bool // diagnosis: drain into votes without its foreign key to poll_options
	only        map[string]bool
	log         io.Writer
}

func main() {
	var o options
	var only string
	flag.StringVar(&o.bin, "bin", ".surge/bin", "directory holding the web, worker, result and bare binaries")
	flag.StringVar(&o.dir, "dir", ".surge/bench", "state and logs")
	flag.StringVar(&o.out, "out", "bench/results.json", "results file")
	flag.StringVar(&o.readme, "readme", "bench/README.md", "README whose results table is replaced")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of each measurement (the figure is their median)")
	flag.DurationVar(&o.measure, "measure", 5*time.Second, "length of each throughput measurement")
	flag.IntVar(&o.votes, "votes", 1_000_000, "votes in the drain backlog")
	flag.IntVar(&o.copiesVotes, "copies-votes", 200_000, "votes in the copies phase's drain backlog (each written once and twice)")
	flag.IntVar(&o.conns, "connections", 64, "concurrent requests of the load tool")
	flag.IntVar(&o.drainBatch, "drain-batch", 0, "worker batch size for the drain (0: the worker's default)")
	flag.BoolVar(&o.dropFK, "drop-fk", false, "diagnosis: drop the votes → poll_options foreign key in the drain's databases (both ways)")
	flag.StringVar(&only, "only", "", "run only these phases (comma-separated: capture,haproxy,drain,cluster,copies); the other phases' figures are kept from --out")
	flag.Parse()
	o.only = map[string]bool{}
	for _, p := range strings.FieldsFunc(only, func(r rune) bool { return r == ',' }) {
		o.only[p] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	var err error
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	for _, b := range []string{"web", "worker", "result", "bare"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%s: build it first (make bench does): %w", b, err)
		}
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	os.RemoveAll(o.dir)
	if err := os.MkdirAll(filepath.Join(o.dir, "logs"), 0o755); err != nil {
		return err
	}
	os.Chmod(o.dir, 0o755)
	logf, err := os.Create(filepath.Join(o.dir, "bench.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	o.log = io.MultiWriter(os.Stdout, logf)

	start := time.Now()
	res := &Results{Date: start.UTC().Format(time.RFC3339), Rounds: o.rounds, MeasureSeconds: o.measure.Seconds(),
		Connections: o.conns, Machine: describeMachine()}
	say(o, "surge bench: %d rounds, %s per throughput measurement, %d connections", o.rounds, o.measure, o.conns)
	say(o, "machine: %s, %d cores, %.1f GB, load average %s", res.Machine.CPU, res.Machine.Cores, res.Machine.MemoryGB, res.Machine.LoadAvg)

	if len(o.only) > 0 {
		res.Only = slices.Sorted(maps.Keys(o.only))
		if err := res.keep(o.out, o.only); err != nil {
			return err
		}
	}

	steal := readCPU()
	for _, p := range phases {
		if len(o.only) > 0 && !o.only[p.name] {
			continue
		}
		t := time.Now()
		before, pressed := readCPU(), readPressure()
		say(o, "\n== %s", p.name)
		if err := p.run(ctx, o, res); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		info := PhaseInfo{Name: p.name, Date: res.Date, Rounds: o.rounds, Seconds: time.Since(t).Seconds(),
			StealPct: readCPU().stealSince(before), LoadAvg: loadAvg()}
		info.CPUPressure, info.IOPressure = readPressure().since(pressed, time.Since(t))
		res.Phases = append(res.Phases, info)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	// Keep the logs; the servers' data (AOFs, the Postgres cluster) can go.
	if entries, err := os.ReadDir(o.dir); err == nil {
		for _, e := range entries {
			if e.Name() != "logs" && e.Name() != "bench.log" {
				os.RemoveAll(filepath.Join(o.dir, e.Name()))
			}
		}
	}
	slices.SortStableFunc(res.Phases, func(a, b PhaseInfo) int { return cmp.Compare(phaseIndex(a.Name), phaseIndex(b.Name)) })
	res.Seconds = time.Since(start).Seconds()
	res.StealPct = readCPU().stealSince(steal)
	res.evaluate()

	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	table := res.Table()
	if err := updateReadme(o.readme, table); err != nil {
		return err
	}
	say(o, "\n%s\nwritten: %s, %s (in %s)", table, o.out, o.readme, time.Since(start).Round(time.Second))
	return nil
}

// phase is one part of the bench; --only picks some by name.
type phase struct {
	name string
	run  func(context.Context, options, *Results) error
}

// phases run in this order.
var phases = []phase{
	{"capture", benchCapture},
	{"haproxy", benchHAProxy},
	{"drain", benchDrain},
	{"cluster", benchCluster},
	{"copies", benchCopies},
}

func phaseIndex(name string) int {
	return slices.IndexFunc(phases, func(p phase) bool { return p.name == name })
}

func say(o options, format string, args ...any) {
	fmt.Fprintf(o.log, format+"\n", args...)
}
