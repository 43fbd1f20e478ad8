package swarmtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/loadgen"
)

// kill is one container that `docker kill` takes down under load.
type kill struct {
	service string
	// before runs on the doomed container and kept on its replacement: a
	// store's data must outlive the container, on the stack's volume.
	before, kept func(ctx context.Context, container string) error
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
		before: func(ctx context.Context, old string) error {
			_, err := docker(ctx, nil, "exec", old, "redis-cli", "SET", marker, value)
			return err
		},
		kept: func(ctx context.Context, replacement string) error {
			got, err := docker(ctx, nil, "exec", replacement, "redis-cli", "GET", marker)
			if err == nil && got != value {
				err = fmt.Errorf("%s is %q in the new Redis, want %q: the AOF did not survive the container", marker, got, value)
			}
			return err
		}}
	web := kill{service: e.webServices[len(e.webServices)-1]}
	postgres := kill{service: stack + "_postgres",
		// Every vote counted before the kill is still counted after it.
		kept: func(ctx context.Context, _ string) error {
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
	cfg := loadgen.DefaultConfig()
	cfg.Target, cfg.AdminPass = c.base, e.adminPassword
	// Duration only bounds the run: the fault ends the load once the stack
	// has healed.
	cfg.Rate, cfg.Duration, cfg.Timeout = 200, 3*time.Minute, 5*time.Second
	cfg.MaxRequests = int64(cfg.Rate * cfg.Duration.Seconds())
	cfg.Voters, cfg.ChangeRatio = 3000, 0.3
	cfg.OrderRatio, cfg.Items, cfg.Stock = 0.1, 3, 100
	cfg.Verify, cfg.DrainTimeout = true, 2*time.Minute
	cfg.JSONPath, cfg.PlotPath = "", ""
	stop := make(chan struct{})
	cfg.Stop = stop

	ended := e.endedTasks(t)
	var healed time.Duration
	faultErr := make(chan error, 1)
	go func() {
		defer close(stop)
		faultErr <- e.killAndHeal(ctx, k, &healed)
	}()
	var out strings.Builder
	rep, err := loadgen.Run(ctx, cfg, &out)
	if ferr := <-faultErr; ferr != nil {
		t.Fatalf("kill %s: %v\n%s", k.service, ferr, out.String())
	}
	var verr *loadgen.VerifyError
	if err != nil && !errors.As(err, &verr) {
		t.Fatalf("kill %s: load: %v\n%s", k.service, err, out.String())
	}
	if rep == nil || rep.Verdict == nil {
		t.Fatalf("kill %s: no verdict\n%s", k.service, out.String())
	}
	v, l := rep.Verdict, rep.Ledger
	if !v.OK() {
		t.Fatalf("kill %s: lost %d, duplicated %d, oversold %d, unexpected %d\n%s", k.service, v.Lost, v.Duplicated, v.Oversold, v.Unexpected, out.String())
	}
	if l.VotesAcked < 1000 || l.OrdersAcked < 100 {
		t.Fatalf("kill %s: %d votes and %d orders acknowledged, want at least 1000 and 100: not a steady load\n%s", k.service, l.VotesAcked, l.OrdersAcked, out.String())
	}
	step("kill %s: replaced and healthy in %s (tasks ended: %s); %d votes and %d orders acknowledged in %.0f s, drained in %.1f s: lost %d, duplicated %d, oversold %d, unexpected %d; unknown %d votes, %d orders",
		k.service, healed.Round(100*time.Millisecond), e.endedSince(t, ended), l.VotesAcked, l.OrdersAcked, rep.Summary.Elapsed, rep.DrainSeconds,
		v.Lost, v.Duplicated, v.Oversold, v.Unexpected, v.UnknownVotes, v.UnknownOrders)
}

// killAndHeal lets the load settle, docker-kills k's container, waits until
// Swarm has replaced it and the whole stack is healthy again, checks what k
// keeps, and lets the load run on the healed stack for a while.
func (e *env) killAndHeal(ctx context.Context, k kill, healed *time.Duration) error {
	time.Sleep(2 * time.Second)
	ids, err := docker(ctx, nil, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+k.service)
	if err != nil || len(lines(ids)) != 1 {
		return fmt.Errorf("want one container: %q %v", ids, err)
	}
	old := ids
	if k.before != nil {
		if err := k.before(ctx, old); err != nil {
			return err
		}
	}
	killed := time.Now()
	if _, err := docker(ctx, nil, "kill", old); err != nil {
		return err
	}
	var replacement string
	err = eventually(2*time.Minute, 500*time.Millisecond, func() error {
		ids, err := docker(ctx, nil, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+k.service)
		if err != nil || len(lines(ids)) != 1 || ids == old {
			return fmt.Errorf("%s: containers %q (killed %s) %v", k.service, ids, old, err)
		}
		replacement = ids
		return e.healthy()
	})
	*healed = time.Since(killed)
	if err != nil {
		return fmt.Errorf("not healed: %w", err)
	}
	if k.kept != nil {
		if err := eventually(30*time.Second, 500*time.Millisecond, func() error { return k.kept(ctx, replacement) }); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second)
	return nil
}

// healthy reports whether every service has converged with every container
// healthy, and HAProxy has found, through Docker's DNS, and checked every
// task of web, result and admin.
func (e *env) healthy() error {
	if err := converged(stack); err != nil {
		return err
	}
	up, err := haproxyUp()
	if err != nil {
		return err
	}
	if want := map[string]int{"web": len(e.webServices), "result": 2, "admin": 2}; !maps.Equal(up, want) {
		return fmt.Errorf("HAProxy servers up: %v, want %v", up, want)
	}
	return nil
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
