package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// copiesShards is the ring the copies phase runs on: three shards, as the
// stack, `make run` and the AWS slot have by default.
const copiesShards = 3

// benchCopies: what the second copy of every entry (package copies) costs,
// in capture and in the drain, each measured against one copy side by side.
func benchCopies(ctx context.Context, o options, res *Results) error {
	res.Copies.Shards = copiesShards
	if err := copiesCapture(ctx, o, res); err != nil {
		return err
	}
	return copiesDrain(ctx, o, res)
}

// copiesCapture: one frontend on a ring of three shards (AOF always),
// configured copies = 2, against the same frontend configured copies = 1.
// Both sides share the shards, and take turns.
func copiesCapture(ctx context.Context, o options, res *Results) error {
	var ps procs
	defer ps.stop()
	var addrs []string
	var redisPids []int
	for i := range copiesShards {
		r, err := startRedis(ctx, o, &ps, fmt.Sprintf("copies-redis-%d", i+1))
		if err != nil {
			return err
		}
		addrs, redisPids = append(addrs, r.Addr), append(redisPids, r.Pid())
	}
	key := cookieKey()
	frontend := func(copies int) (string, *side, error) {
		name := fmt.Sprintf("copies-web-%d", copies)
		// The frontend of shard 1: a vote goes to shard 1, and with two
		// copies to shard 2 as well.
		env := append(webEnv(addrs[0], key, name), "SURGE_SHARDS="+strings.Join(addrs, ","), "SURGE_SHARD=1",
			"SURGE_COPIES="+strconv.Itoa(copies))
		addr, pid, err := service(ctx, o, &ps, name, "web", nil, env)
		return "http://" + addr, newSide(map[string][]int{"web": {pid}, "redis": redisPids}), err
	}
	two, twoSide, err := frontend(2)
	if err != nil {
		return err
	}
	one, oneSide, err := frontend(1)
	if err != nil {
		return err
	}
	twos, ones, err := alternate(ctx, o, "copies, capture: 2 copies vs 1", throughput(ctx, o, two, "copies-web-2", twoSide),
		throughput(ctx, o, one, "copies-web-1", oneSide))
	if err != nil {
		return err
	}
	c := &res.Copies.Capture
	c.Two, c.One, c.ErrorsTwo, c.ErrorsOne = figure("/s", twos), figure("/s", ones), twoSide.errors, oneSide.errors
	c.CPUTwo, c.CPUOne = twoSide.figures(), oneSide.figures()
	return nil
}

// copiesDrain: the same votes written to two shards each (same event id, on
// a shard and the next, as package copies writes them) and written once,
// drained by the worker processes into a fresh database each round.
func copiesDrain(ctx context.Context, o options, res *Results) error {
	const workers = 2
	say(o, "  generating %d votes...", o.copiesVotes)
	b, err := makeBacklog(o.copiesVotes)
	if err != nil {
		return err
	}
	db, err := startStore(ctx, o, "copies-postgres")
	if err != nil {
		return err
	}
	defer db.stop()
	d := &res.Copies.Drain
	d.Votes, d.Voters, d.Workers, d.CheckedOut = len(b.votes), b.voters, workers, true
	var skipped []float64
	cpu := map[int]map[string][]float64{1: {}, 2: {}}
	measure := func(copies int) func(int) (float64, error) {
		return func(round int) (float64, error) {
			run, err := drainWorkers(ctx, o, db, fmt.Sprintf("copies_%d_%d", copies, round+1), b, copiesShards, workers, copies)
			if err != nil {
				return 0, err
			}
			if run.counts != "" {
				d.CheckedOut = false
				res.Notes = append(res.Notes, fmt.Sprintf("copies drain, %d copies, round %d: the counts differ from the backlog: %s", copies, round+1, run.counts))
			}
			for k, v := range run.cpu {
				cpu[copies][k] = append(cpu[copies][k], float64(v)/float64(time.Microsecond)/float64(len(b.votes)))
			}
			if copies == 2 {
				skipped = append(skipped, run.skipped)
			}
			say(o, "  copies drain round %d, %d copies: %.0f votes/s, %.0f entries/s (%s; %.0f entries applied, %.0f copies skipped)",
				round+1, copies, run.votesPerSecond(b), run.votesPerSecond(b)*float64(copies), run.took.Round(time.Millisecond), run.applied, run.skipped)
			return run.votesPerSecond(b), nil
		}
	}
	twos, ones, err := alternate(ctx, o, "copies, drain: 2 copies vs 1 (votes)", measure(2), measure(1))
	if err != nil {
		return err
	}
	d.Two, d.One, d.Skipped = figure("votes/s", twos), figure("votes/s", ones), figure("entries", skipped)
	d.CPUTwo, d.CPUOne = figures("µs", cpu[2]), figures("µs", cpu[1])
	return nil
}
