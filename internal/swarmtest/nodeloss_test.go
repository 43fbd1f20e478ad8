package swarmtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/dind"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/loadgen"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/stackfile"
	"github.com/surge-vote/surge/internal/testenv"
)

// nodeLoss kills whole nodes under the load tool's votes and orders, as a
// power cut would (docker kill of the node container: every task on it
// dies at once):
//
//  1. the node of shard 2, started again on its disk: capture goes on
//     through the other nodes, and once it is back and drained nothing is
//     lost, duplicated or oversold;
//  2. the same node, its disk gone: a fresh node takes its place. Every
//     entry acknowledged was on a second shard's disk too (package
//     copies), so again nothing is lost, duplicated or oversold;
//  3. the node of Postgres and shard 3, started again on its disk: capture
//     goes on through shards 1 and 2, commits stop until Postgres is back
//     (reported), and nothing is lost.
//
// Each step logs one line: acknowledged, lost, duplicated, oversold,
// unknown, and the time to recover.
func (e *env) nodeLoss(t *testing.T, ctx context.Context, step func(string, ...any)) {
	st, err := readStack(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shard2 := e.nodeOf(stackfile.ShardNodeLabel(2))
	pg := e.nodeOf(stackfile.PostgresLabel)
	// Healed once the node is back (dind's own bounds), Swarm has started
	// the tasks placed on it again (redis-k or postgres, then web-k or the
	// services that lost their database), each within its restart bound,
	// and every HAProxy routes to them.
	healBound := func(services ...string) time.Duration {
		var d time.Duration
		for _, s := range services {
			d += st.restartBound(s)
		}
		return d + slow*(st.maxVerdict()+haproxyFind)
	}

	// 1. Shard 2's node, back on its disk. The load enters through node 1.
	e.entry = e.nodeOf(stackfile.ShardNodeLabel(1))
	bound := healBound(e.redisServices[1], e.webServices[1])
	var recovered time.Duration
	var killed time.Time
	rep, out := e.underLoad(t, ctx, "node loss 1", newClient(e.baseURL(e.entry), 32), bound, func() error {
		return e.killNode(ctx, t, shard2, bound, &killed, &recovered, nil, func() error { return e.cluster.Restart(ctx, shard2) })
	})
	if v := rep.Verdict; !v.OK() {
		t.Fatalf("node loss 1: lost %d, duplicated %d, oversold %d, unexpected %d\n%s", v.Lost, v.Duplicated, v.Oversold, v.Unexpected, out)
	}
	step("node loss 1: %s", nodeLossLine(shard2, "killed, started again on its disk", rep, recovered))
	e.checkQueues(t)

	// 2. The same node, its disk gone: a fresh node in its place. The
	// workers are stopped first, so that the shard's entries are still
	// undrained on its disk when it goes (with them running, the backlog
	// is near zero at any moment and the step would prove little).
	workers := len(e.containers(t, stack+"_worker"))
	must(t, "service", "scale", "--detach", stack+"_worker=0")
	bound2 := bound + st.restartBound(stack+"_worker")
	var undrained int64
	rep, out = e.underLoad(t, ctx, "node loss 2", newClient(e.baseURL(e.entry), 32), bound2, func() error {
		// A backlog worth losing: a few seconds of the load.
		lag := func() error {
			return testenv.WaitFor(ctx, steadyBound, func() (err error) {
				if undrained, err = e.streamLag(ctx, e.redisServices[1]); err == nil && undrained < minUndrained {
					err = fmt.Errorf("shard 2 holds %d undrained entries, waiting for %d", undrained, minUndrained)
				}
				return err
			})
		}
		return e.killNode(ctx, t, shard2, bound2, &killed, &recovered, lag, func() error {
			if err := e.cluster.Replace(ctx, shard2, e.images()...); err != nil {
				return err
			}
			if _, err := docker(ctx, nil, "node", "update", "--label-add", stackfile.ShardNodeLabel(2)+"=true", shard2.ID); err != nil {
				return err
			}
			_, err := docker(ctx, nil, "service", "scale", "--detach", fmt.Sprintf("%s_worker=%d", stack, workers))
			return err
		})
	})
	if v := rep.Verdict; !v.OK() {
		t.Fatalf("node loss 2: lost %d, duplicated %d, oversold %d, unexpected %d: every acknowledged entry had a second copy\n%s",
			v.Lost, v.Duplicated, v.Oversold, v.Unexpected, out)
	}
	step("node loss 2: %s (workers stopped: %d undrained entries died with shard 2's disk, their second copies did not)",
		nodeLossLine(shard2, "killed, replaced by a fresh node without its disk", rep, recovered), undrained)
	e.checkQueues(t)

	// 3. Postgres's node (shard 3's too), back on its disk. The load
	// enters through another node.
	e.entry = shard2
	bound = healBound(stack+"_postgres", stack+"_result", e.redisServices[2], e.webServices[2])
	var stopped time.Duration
	rep, out = e.underLoad(t, ctx, "node loss 3", newClient(e.baseURL(e.entry), 32), bound, func() error {
		err := e.killNode(ctx, t, pg, bound, &killed, &recovered, nil, func() error { return e.cluster.Restart(ctx, pg) })
		if err != nil {
			return err
		}
		// Commits resumed at the first commit after the kill, by
		// Postgres's clock (the node's, this machine's).
		first, err := e.firstCommitAfter(ctx, killed)
		stopped = first.Sub(killed)
		return err
	})
	if v := rep.Verdict; !v.OK() {
		t.Fatalf("node loss 3: lost %d, duplicated %d, oversold %d, unexpected %d\n%s", v.Lost, v.Duplicated, v.Oversold, v.Unexpected, out)
	}
	step("node loss 3: %s; commits stopped for %s", nodeLossLine(pg, "killed, started again on its disk", rep, recovered), stopped.Round(100*time.Millisecond))
	e.checkQueues(t)
}

// minUndrained is the backlog node loss 2 waits for on shard 2 before the
// kill: about 5 s of the load's entries that reach shard 2.
const minUndrained = 500

// streamLag reads how many entries of service's Redis stream the workers'
// group has not read yet (XINFO GROUPS's lag, Redis 7).
func (e *env) streamLag(ctx context.Context, service string) (int64, error) {
	ids, err := e.runningContainers(ctx, service)
	if err != nil || len(ids) != 1 {
		return 0, fmt.Errorf("%s: want one container: %v %v", service, ids, err)
	}
	out, err := e.on(ctx, ids[0].node, "exec", ids[0].id, "redis-cli", "XINFO", "GROUPS", redis.DefaultStream)
	if err != nil {
		return 0, err
	}
	// One name/value per line: name workers ... lag N, per group.
	var group string
	fields := strings.Fields(out)
	for i := 0; i+1 < len(fields); i++ {
		switch fields[i] {
		case "name":
			group = fields[i+1]
		case "lag":
			if group == drain.DefaultConfig().Group {
				return strconv.ParseInt(fields[i+1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: no lag of the workers' group in XINFO GROUPS: %q", service, out)
}

// killNode waits until the load reaches the stack, runs before (if any),
// kills node n, checks
// that capture goes on through the HAProxy the load enters by, brings the
// node back with heal, and waits until the whole stack has converged and
// every HAProxy routes to every task again; then it lets the load run on
// the healed stack for a while. It records when the kill began, and the
// time from there to the healed stack.
func (e *env) killNode(ctx context.Context, t *testing.T, n *dind.Node, bound time.Duration, killed *time.Time, recovered *time.Duration, before, heal func() error) error {
	if err := e.webRequests(ctx, steadyVotes); err != nil {
		return fmt.Errorf("before the kill: %w", err)
	}
	if before != nil {
		if err := before(); err != nil {
			return fmt.Errorf("before the kill: %w", err)
		}
	}
	*killed = time.Now()
	if err := e.cluster.Kill(ctx, n); err != nil {
		return err
	}
	e.down[n.Name] = true
	// Capture goes on through the nodes left.
	if err := e.webRequests(ctx, steadyVotes); err != nil {
		return fmt.Errorf("with %s down: %w", n.Name, err)
	}
	if err := heal(); err != nil {
		return fmt.Errorf("bring %s back: %w", n.Name, err)
	}
	delete(e.down, n.Name)
	if err := e.settle(t, ctx, "node "+n.Name+" back", bound, e.routed); err != nil {
		return err
	}
	*recovered = time.Since(*killed)
	return e.webRequests(ctx, steadyVotes)
}

// firstCommitAfter returns when the first order after t committed, read
// from Postgres itself (orders are only inserted, each with its commit
// time, by Postgres's clock: the node's, this machine's). The load orders
// all along, so it is when commits resumed.
func (e *env) firstCommitAfter(ctx context.Context, t time.Time) (time.Time, error) {
	pg, err := e.runningContainers(ctx, stack+"_postgres")
	if err != nil || len(pg) != 1 {
		return time.Time{}, fmt.Errorf("postgres container: %v %v", pg, err)
	}
	q := fmt.Sprintf("SELECT to_char(min(committed_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM orders WHERE committed_at > '%s'",
		t.UTC().Format(time.RFC3339Nano))
	out, err := e.on(ctx, pg[0].node, "exec", pg[0].id, "psql", "-U", "surge", "-d", "surge", "-tAc", q)
	if err != nil {
		return time.Time{}, err
	}
	first, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
	if err != nil {
		return time.Time{}, fmt.Errorf("no order committed after %s (%q)", t.Format("15:04:05.000"), out)
	}
	return first, nil
}

// nodeLossLine is a node-loss step's one-line summary.
func nodeLossLine(n *dind.Node, what string, rep *loadgen.Report, recovered time.Duration) string {
	v, l := rep.Verdict, rep.Ledger
	return fmt.Sprintf("%s %s: %d votes and %d orders acknowledged; lost %d, duplicated %d, oversold %d, unexpected %d, unknown %d votes and %d orders; recovered in %s, drained %.1f s after the load",
		n.Name, what, l.VotesAcked, l.OrdersAcked, v.Lost, v.Duplicated, v.Oversold, v.Unexpected, v.UnknownVotes, v.UnknownOrders,
		recovered.Round(100*time.Millisecond), rep.DrainSeconds)
}
