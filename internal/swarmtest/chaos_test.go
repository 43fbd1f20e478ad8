package swarmtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/loadgen"
	"github.com/surge-vote/surge/internal/testenv"
)

// kill is one container that `docker kill` takes down under load.
type kill struct {
	service string
	// before runs on the doomed container and kept on its replacement: a
	// store's data must outlive the container, on the stack's volume.
	before, kept func(ctx context.Context, container taskContainer) error
}

// killUnderLoad docker-kills a shard's Redis, a frontend and Postgres in
// turn, each under its own run of the load tool through HAProxy (votes,
// vote changes and orders). Swarm must restart the task (a new container,
// every service converged and healthy, HAProxy seeing every server again);
// the load goes on for a while on the healed stack, and the load tool's
// verifier must find nothing lost, duplicated, oversold or unexpected once
// the queues drain. final is the default poll's counts, which the Postgres
// kill must keep.
func (e *env) killUnderLoad(t *testing.T, ctx context.Context, c *client, final map[string]int64, step func(string, ...any)) {
	marker := "surge:swarmtest:kept"
	value := randomHex(8)
	redis := kill{service: e.redisServices[0],
		// A key written before the kill is read back from the new container:
		// the AOF lives on the shard's volume.
		before: func(ctx context.Context, old taskContainer) error {
			_, err := e.on(ctx, old.node, "exec", old.id, "redis-cli", "SET", marker, value)
			return err
		},
		kept: func(ctx context.Context, replacement taskContainer) error {
			got, err := e.on(ctx, replacement.node, "exec", replacement.id, "redis-cli", "GET", marker)
			if err == nil && got != value {
				err = fmt.Errorf("%s is %q in the new Redis, want %q: the AOF did not survive the container", marker, got, value)
			}
			return err
		}}
	web := kill{service: e.webServices[len(e.webServices)-1]}
	postgres := kill{service: stack + "_postgres",
		// Every vote counted before the kill is still counted after it.
		kept: func(ctx context.Context, _ taskContainer) error {
			got, _, err := c.counts(ctx)
			if err != nil {
				return err
			}
			for _, ch := range choices {
				if got[ch] != final[ch] {
					return fmt.Errorf("after the Postgres kill the counts are %v, want %v", got, final)
				}
			}
			return nil
		}}
	for _, k := range []kill{redis, web, postgres} {
		e.killOne(t, ctx, c, k, step)
		e.checkQueues(t)
	}
}

// killOne runs the load tool while k's container is killed and replaced.
func (e *env) killOne(t *testing.T, ctx context.Context, c *client, k kill, step func(string, ...any)) {
	t.Helper()
	st, err := readStack(ctx)
	if err != nil {
		t.Fatalf("kill %s: %v", k.service, err)
	}
	// Healed once Swarm has restarted the task and found it healthy, the
	// services that lost it meanwhile (result and the workers without
	// Postgres) are healthy again too, and HAProxy routes to them.
	healBound := st.restartBound(k.service) + slow*(st.maxVerdict(k.service)+haproxyFind)
	ended := e.endedTasks(t)
	var healed time.Duration
	rep, out := e.underLoad(t, ctx, "kill "+k.service, c, healBound, func() error {
		return e.killAndHeal(t, ctx, k, healBound, &healed)
	})
	v, l := rep.Verdict, rep.Ledger
	if !v.OK() {
		t.Fatalf("kill %s: lost %d, duplicated %d, oversold %d, unexpected %d\n%s", k.service, v.Lost, v.Duplicated, v.Oversold, v.Unexpected, out)
	}
	step("kill %s: replaced and healthy in %s (bound %s; tasks ended: %s); %d votes and %d orders acknowledged in %.0f s, drained in %.1f s: lost %d, duplicated %d, oversold %d, unexpected %d; unknown %d votes, %d orders",
		k.service, healed.Round(100*time.Millisecond), healBound, e.endedSince(t, ended), l.VotesAcked, l.OrdersAcked, rep.Summary.Elapsed, rep.DrainSeconds,
		v.Lost, v.Duplicated, v.Oversold, v.Unexpected, v.UnknownVotes, v.UnknownOrders)
}

// underLoad runs the load tool (votes, vote changes and orders, with its
// verifier) through c while fault runs, and stops it once fault returns;
// bound is what fault may take, and the load goes on for a while after.
// A fault that fails, a load that fails other than in its verdict, or a
// load too thin to mean anything (under 1,000 votes or 100 orders) fails
// the test. It returns the report, verdict included, and the tool's output.
func (e *env) underLoad(t *testing.T, ctx context.Context, what string, c *client, bound time.Duration, fault func() error) (*loadgen.Report, string) {
	t.Helper()
	cfg := loadgen.DefaultConfig()
	cfg.Target, cfg.AdminPass = c.base, e.adminPassword
	// The nodes' own addresses on the test's bridge: containers this test
	// started, not loopback.
	cfg.AllowRemote = true
	// Duration only bounds the run: the fault ends the load.
	cfg.Rate, cfg.Duration, cfg.Timeout = 200, bound+2*steadyBound, 5*time.Second
	cfg.MaxRequests = int64(cfg.Rate * cfg.Duration.Seconds())
	cfg.Voters, cfg.ChangeRatio = 3000, 0.3
	cfg.OrderRatio, cfg.Items, cfg.Stock = 0.1, 3, 100
	cfg.Verify, cfg.DrainTimeout = true, e.drainBound(t)
	cfg.JSONPath, cfg.PlotPath = "", ""
	stop := make(chan struct{})
	cfg.Stop = stop
	faultErr := make(chan error, 1)
	go func() {
		defer close(stop)
		faultErr <- fault()
	}()
	var out strings.Builder
	rep, err := loadgen.Run(ctx, cfg, &out)
	var verr *loadgen.VerifyError
	if err != nil && !errors.As(err, &verr) {
		// The fault waits for the load, which has ended: say why first.
		t.Fatalf("%s: load: %v (the fault then: %v)\n%s", what, err, <-faultErr, out.String())
	}
	if ferr := <-faultErr; ferr != nil {
		t.Fatalf("%s: %v\n%s", what, ferr, out.String())
	}
	if rep == nil || rep.Verdict == nil {
		t.Fatalf("%s: no verdict\n%s", what, out.String())
	}
	if l := rep.Ledger; l.VotesAcked < 1000 || l.OrdersAcked < 100 {
		t.Fatalf("%s: %d votes and %d orders acknowledged, want at least 1000 and 100: not a steady load\n%s", what, l.VotesAcked, l.OrdersAcked, out.String())
	}
	return rep, out.String()
}

// killAndHeal waits until the load reaches the stack, docker-kills k's
// container, waits until Swarm has replaced it and the whole stack is
// healthy again, checks what k keeps, and lets the load run on the healed
// stack for a while.
func (e *env) killAndHeal(t *testing.T, ctx context.Context, k kill, bound time.Duration, healed *time.Duration) error {
	if err := e.webRequests(ctx, steadyVotes); err != nil {
		return fmt.Errorf("before the kill: %w", err)
	}
	ids, err := e.runningContainers(ctx, k.service)
	if err != nil || len(ids) != 1 {
		return fmt.Errorf("want one container: %v %v", ids, err)
	}
	old := ids[0]
	if k.before != nil {
		if err := k.before(ctx, old); err != nil {
			return err
		}
	}
	killed := time.Now()
	if _, err := e.on(ctx, old.node, "kill", old.id); err != nil {
		return err
	}
	var replacement taskContainer
	err = e.settle(t, ctx, "kill "+k.service, bound, func() error {
		ids, err := e.runningContainers(ctx, k.service)
		if err != nil || len(ids) != 1 || ids[0].id == old.id {
			return fmt.Errorf("%s: containers %v (killed %s) %v", k.service, ids, old, err)
		}
		replacement = ids[0]
		return e.routed()
	})
	*healed = time.Since(killed)
	if err != nil {
		return fmt.Errorf("not healed: %w", err)
	}
	if k.kept != nil {
		// The replacement is healthy: what it keeps is there, or lost.
		if err := testenv.WaitFor(ctx, notifyBound, func() error { return k.kept(ctx, replacement) }); err != nil {
			return err
		}
	}
	return e.webRequests(ctx, steadyVotes)
}

// endedTasks returns the IDs of the stack's tasks that have ended.
func (e *env) endedTasks(t *testing.T) map[string]string {
	out := must(t, "stack", "ps", stack, "--filter", "desired-state=shutdown", "--format", "{{.ID}} {{.Name}}")
	tasks := map[string]string{}
	for _, l := range lines(out) {
		id, name, _ := strings.Cut(l, " ")
		tasks[id] = name
	}
	return tasks
}

// endedSince names the tasks that ended since before was taken: the killed
// one, and those Swarm replaced because their health check failed meanwhile.
func (e *env) endedSince(t *testing.T, before map[string]string) string {
	var names []string
	for id, name := range e.endedTasks(t) {
		if _, ok := before[id]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
