package swarmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/surge-vote/surge/internal/testenv"
)

// docker runs the docker CLI and returns its trimmed stdout; stderr is part
// of the error.
func docker(ctx context.Context, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("docker %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// must is docker that fails the test on error.
func must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(context.Background(), nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lines(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(strings.TrimSpace(s), "\n")
}

// moduleRoot finds the directory holding go.mod, where docker-stack.yml is.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}

// swarmService is what the test reads of `docker service inspect`: the
// Engine API's swarm.Service, durations in nanoseconds.
type swarmService struct {
	ID   string
	Spec struct {
		Name string
		Mode struct {
			Replicated *struct{ Replicas uint64 }
			Global     *struct{}
		}
		TaskTemplate struct {
			ContainerSpec struct {
				Healthcheck *struct {
					Interval, Timeout, StartPeriod time.Duration
					Retries                        int
				}
				StopGracePeriod *time.Duration
			}
			RestartPolicy *struct{ Delay *time.Duration }
		}
		UpdateConfig *struct {
			Delay, Monitor time.Duration
			Order          string
		}
	}
	UpdateStatus *struct{ State, Message string }
	// template is Spec.TaskTemplate as Swarm gave it: a task whose spec
	// differs still runs an older version of the service.
	template any
}

// swarmTask is what the test reads of `docker inspect --type task`.
type swarmTask struct {
	ID, ServiceID, NodeID string
	Slot                  int
	DesiredState          string
	CreatedAt             time.Time
	Spec                  any
	Status                struct {
		Timestamp           time.Time
		State, Message, Err string
		ContainerStatus     *struct{ ContainerID string }
	}
}

func (t swarmTask) String() string {
	s := fmt.Sprintf("%s slot %d desired %s, %s since %s", t.ID[:min(12, len(t.ID))], t.Slot, t.DesiredState,
		t.Status.State, t.Status.Timestamp.Format("15:04:05.000"))
	if t.Status.Err != "" {
		s += ": " + t.Status.Err
	}
	return s
}

// stackState is one look at the stack's services and every task Swarm
// still keeps of them (the running ones and a short history per slot).
type stackState struct {
	services []swarmService
	tasks    map[string][]swarmTask // by service ID, newest first
}

// readStack reads the stack's services and tasks from the Swarm API. A
// task or service listed and then removed before the inspect (a rolling
// update, a scale to 0) fails one read; it reads again for a few seconds.
func readStack(ctx context.Context) (*stackState, error) {
	var st *stackState
	err := testenv.WaitFor(ctx, readStackRetry, func() (err error) {
		st, err = readStackOnce(ctx)
		return err
	})
	return st, err
}

// readStackRetry bounds readStack's retries: a few CLI round trips.
const readStackRetry = 5 * time.Second

func readStackOnce(ctx context.Context) (*stackState, error) {
	ids, err := docker(ctx, nil, "service", "ls", "-q", "--filter", "label=com.docker.stack.namespace="+stack)
	if err != nil {
		return nil, err
	}
	if len(lines(ids)) == 0 {
		return nil, errors.New("no services")
	}
	out, err := docker(ctx, nil, append([]string{"service", "inspect"}, lines(ids)...)...)
	if err != nil {
		return nil, err
	}
	st := &stackState{tasks: map[string][]swarmTask{}}
	var templates []struct{ Spec struct{ TaskTemplate any } }
	if err := json.Unmarshal([]byte(out), &st.services); err != nil {
		return nil, fmt.Errorf("service inspect: %w", err)
	}
	if err := json.Unmarshal([]byte(out), &templates); err != nil || len(templates) != len(st.services) {
		return nil, fmt.Errorf("service inspect: %v", err)
	}
	for i := range st.services {
		st.services[i].template = comparable(templates[i].Spec.TaskTemplate)
	}
	taskIDs, err := docker(ctx, nil, append([]string{"service", "ps", "-q", "--no-trunc"}, lines(ids)...)...)
	if err != nil || len(lines(taskIDs)) == 0 {
		return st, err
	}
	out, err = docker(ctx, nil, append([]string{"inspect", "--type", "task"}, lines(taskIDs)...)...)
	if err != nil {
		return nil, err // a task removed between the two calls
	}
	var tasks []swarmTask
	if err := json.Unmarshal([]byte(out), &tasks); err != nil {
		return nil, fmt.Errorf("task inspect: %w", err)
	}
	for _, t := range tasks {
		t.Spec = comparable(t.Spec)
		st.tasks[t.ServiceID] = append(st.tasks[t.ServiceID], t)
	}
	for id := range st.tasks {
		slices.SortFunc(st.tasks[id], func(a, b swarmTask) int { return b.CreatedAt.Compare(a.CreatedAt) })
	}
	return st, nil
}

// comparable returns a task spec (a service's TaskTemplate, or a task's
// Spec) for comparing the two as swarmkit's IsTaskDirty does: without the
// placement (a placement change alone does not make a running task stale
// while its node still satisfies it), and without the values the Engine
// API leaves out of a task's spec when they are unset or the default
// (DNSConfig {}, NoNewPrivileges false, Runtime "container").
func comparable(spec any) any {
	m, ok := spec.(map[string]any)
	if ok {
		delete(m, "Placement")
		if m["Runtime"] == "container" {
			delete(m, "Runtime")
		}
	}
	return withoutZeros(spec)
}

// withoutZeros drops, at every depth, the fields that hold a zero value.
func withoutZeros(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if x = withoutZeros(x); x == nil {
				delete(v, k)
			} else {
				v[k] = x
			}
		}
		if len(v) == 0 {
			return nil
		}
		return v
	case []any:
		for i := range v {
			v[i] = withoutZeros(v[i])
		}
		if len(v) == 0 {
			return nil
		}
		return v
	case string, bool, float64:
		if reflect.ValueOf(v).IsZero() {
			return nil
		}
	}
	return v
}

func (st *stackState) service(name string) (swarmService, bool) {
	i := slices.IndexFunc(st.services, func(s swarmService) bool { return s.Spec.Name == name })
	if i < 0 {
		return swarmService{}, false
	}
	return st.services[i], true
}

// failedUpdate is an update that Swarm gave up on (rolled back or paused):
// waiting cannot fix it.
type failedUpdate struct {
	service, state, message string
	tasks                   []swarmTask
}

func (f *failedUpdate) Error() string {
	return fmt.Sprintf("%s: update %s (%s); its tasks:\n  %s", f.service, f.state, f.message, taskLines(f.tasks))
}

// doubledSlot is a slot left with more than one running task after its
// service's update completed: moby/swarmkit#2242 (see converged).
type doubledSlot struct {
	service, order string
	slot           string // the task number, or a global service's node
	replicas       uint64
	global         bool
	history        []swarmTask // every task Swarm keeps of the slot, newest first
}

func (d *doubledSlot) Error() string {
	return fmt.Sprintf("%s: slot %s has %d running tasks after its %s update completed (moby/swarmkit#2242); the slot's tasks:\n  %s",
		d.service, d.slot, len(running(d.history)), d.order, taskLines(d.history))
}

func taskLines(tasks []swarmTask) string {
	var s []string
	for _, t := range tasks {
		s = append(s, t.String())
	}
	return strings.Join(s, "\n  ")
}

func running(tasks []swarmTask) []swarmTask {
	var r []swarmTask
	for _, t := range tasks {
		if t.DesiredState == "running" {
			r = append(r, t)
		}
	}
	return r
}

// converged judges the stack as Swarm does, service by service:
//   - its update (UpdateStatus) has completed, or there was none; an update
//     rolled back or paused is a *failedUpdate, with the tasks' errors;
//   - each slot (a replicated service's task number, or a global service's
//     node) holds exactly one task that Swarm wants running
//     (desired-state=running), and that task is running the service's
//     current spec. A task reaches "running" only once its health check
//     has passed; one whose check then fails is replaced.
//
// The replica count of `docker service ls` is no judge: it shows 3/2 when a
// slot holds two running tasks. That happens to a start-first update when
// an old task fails before the updater has replaced it: the restart policy
// starts a task of the new spec in its slot, and the updater starts its
// own (moby/swarmkit#2242). Swarm usually removes one when the update
// completes, not always (see doubledWait): converged returns a slot still
// doubled after its update completed as a *doubledSlot.
func (st *stackState) converged() error {
	var wrong []string
	for _, s := range st.services {
		name := s.Spec.Name
		tasks := st.tasks[s.ID]
		state := ""
		if s.UpdateStatus != nil {
			state = s.UpdateStatus.State
		}
		switch state {
		case "", "completed":
		case "updating":
			wrong = append(wrong, name+": updating")
			continue
		default:
			var failed []swarmTask
			for _, t := range tasks {
				if t.Status.Err != "" || t.DesiredState == "running" {
					failed = append(failed, t)
				}
			}
			return &failedUpdate{service: name, state: state, message: s.UpdateStatus.Message, tasks: failed}
		}
		global := s.Spec.Mode.Global != nil
		slotOf := func(t swarmTask) string {
			if global {
				return t.NodeID
			}
			return fmt.Sprint(t.Slot)
		}
		slots := map[string][]swarmTask{}
		for _, t := range running(tasks) {
			slots[slotOf(t)] = append(slots[slotOf(t)], t)
		}
		var replicas uint64
		if r := s.Spec.Mode.Replicated; r != nil {
			replicas = r.Replicas
		}
		if global && len(slots) == 0 || !global && uint64(len(slots)) != replicas {
			wrong = append(wrong, fmt.Sprintf("%s: %d slots with a running task, want %d", name, len(slots), max(replicas, 1)))
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(slots)) {
			ts := slots[key]
			if len(ts) > 1 {
				d := &doubledSlot{service: name, slot: key, replicas: replicas, global: global}
				if s.Spec.UpdateConfig != nil {
					d.order = s.Spec.UpdateConfig.Order
				}
				for _, t := range tasks {
					if slotOf(t) == key {
						d.history = append(d.history, t)
					}
				}
				return d
			}
			t := ts[0]
			switch {
			case t.Status.State != "running":
				wrong = append(wrong, fmt.Sprintf("%s: task %s", name, t))
			case !reflect.DeepEqual(t.Spec, s.template):
				wrong = append(wrong, fmt.Sprintf("%s: task %s runs an older spec", name, t))
			}
		}
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return fmt.Errorf("not converged: %s", strings.Join(wrong, "; "))
	}
	return nil
}

// endedSince lists the tasks that ended by themselves after since: failed
// or rejected, or "complete". A service's task completes when its process
// exits 0, which is also what a task killed for failing its health check
// does (Swarm stops it gracefully and keeps no error then), so each comes
// with its container's last health probes: a check timing out under load
// shows there. inspect runs `docker inspect` on the node of a task.
func (st *stackState) endedSince(ctx context.Context, since time.Time, inspect func(ctx context.Context, nodeID string, args ...string) (string, error)) []string {
	var out []string
	ids := map[string][]string{} // by node
	for _, s := range st.services {
		for _, t := range st.tasks[s.ID] {
			switch t.Status.State {
			case "failed", "rejected", "complete":
			default:
				continue
			}
			if !t.Status.Timestamp.After(since) {
				continue
			}
			out = append(out, fmt.Sprintf("%s.%d %s at %s %s", s.Spec.Name, t.Slot, t.Status.State, t.Status.Timestamp.Format("15:04:05"), t.Status.Err))
			if t.Status.ContainerStatus != nil && t.Status.ContainerStatus.ContainerID != "" {
				ids[t.NodeID] = append(ids[t.NodeID], t.Status.ContainerStatus.ContainerID)
			}
		}
	}
	for node, ids := range ids {
		health, _ := inspect(ctx, node, append([]string{"inspect", "-f", `{{.Name}} exit {{.State.ExitCode}}{{with .State.Health}}, health {{.Status}} after {{.FailingStreak}} failed probes:{{range .Log}} [{{.ExitCode}} {{printf "%.120q" .Output}}]{{end}}{{end}}`}, ids...)...)
		out = append(out, lines(health)...)
	}
	return out
}

// Bounds. Each wait below is bounded by what it waits for, read from the
// services' own specs, times slow.

// slow: on a 2-core machine shared with other work a task can fail its first
// start (its health check timing out while everything else starts too) and
// be replaced once, so every bound allows two attempts.
const slow = 2

// verdict is the longest Swarm takes to find a new task of s healthy: its
// start period, then up to retries probes, each an interval apart and up to
// its timeout long. A task not found healthy by then is replaced.
func (s swarmService) verdict() time.Duration {
	h := s.Spec.TaskTemplate.ContainerSpec.Healthcheck
	if h == nil {
		return 0
	}
	return h.StartPeriod + time.Duration(h.Retries)*(h.Interval+h.Timeout)
}

func (s swarmService) stopGrace() time.Duration {
	if g := s.Spec.TaskTemplate.ContainerSpec.StopGracePeriod; g != nil {
		return *g
	}
	return 10 * time.Second // Docker's default
}

// rollTime is how long a rolling update of s takes at most, one slot at a
// time: per slot, the old task's stop (stop-first), the new task's verdict
// and the update delay; then the monitor period before "completed".
func (s swarmService) rollTime() time.Duration {
	slots := time.Duration(1)
	if r := s.Spec.Mode.Replicated; r != nil {
		slots = time.Duration(max(r.Replicas, 1))
	}
	per, monitor := s.verdict(), time.Duration(0)
	if u := s.Spec.UpdateConfig; u != nil {
		per += u.Delay
		monitor = u.Monitor
		if u.Order == "stop-first" {
			per += s.stopGrace()
		}
	}
	return slots*per + monitor
}

// restartBound bounds replacing a task of the named service, or starting
// one more: Swarm's restart delay, then the new task's verdict.
func (st *stackState) restartBound(name string) time.Duration {
	s, _ := st.service(name)
	d := 5 * time.Second // Swarm's default restart delay
	if p := s.Spec.TaskTemplate.RestartPolicy; p != nil && p.Delay != nil {
		d = *p.Delay
	}
	return slow * (d + s.verdict())
}

// rollBound bounds a change of the named services (all of them if none is
// named): they roll in parallel.
func (st *stackState) rollBound(names ...string) time.Duration {
	var d time.Duration
	for _, s := range st.services {
		if len(names) == 0 || slices.Contains(names, s.Spec.Name) {
			d = max(d, s.rollTime())
		}
	}
	return slow * d
}

func (st *stackState) verdict(name string) time.Duration {
	s, _ := st.service(name)
	return s.verdict()
}

// maxVerdict is the longest verdict of any service but those named.
func (st *stackState) maxVerdict(except ...string) time.Duration {
	var d time.Duration
	for _, s := range st.services {
		if !slices.Contains(except, s.Spec.Name) {
			d = max(d, s.verdict())
		}
	}
	return d
}

// haproxyFind is how long HAProxy takes to route to a task once it is
// healthy: Docker's DNS lists it, HAProxy's resolution holds an answer for
// 1 s (1 s resolve timeout), and a server is up after rise 2 checks 1 s
// apart (stack/deploy/haproxy.cfg).
const haproxyFind = 4 * time.Second

// doubledWait is how long a doubled slot (moby/swarmkit#2242) is given to
// go away by itself once its update has completed. Completing the update
// changes the service, the orchestrator reconciles it again, and a new
// updater keeps one task per slot: seen here on Docker 20.10, within
// seconds. But that reconcile does nothing when it runs before the finished
// updater has unregistered (an update towards the same spec looks still
// under way), and nothing looks at the slot again until the service
// changes. One update delay and monitor period (15 s) is ample, doubled.
const doubledWait = slow * 15 * time.Second

// settle waits, within bound, until the stack has converged (see
// converged) and also, when given, holds. It logs the tasks that ended on
// the way (see endedSince). An update that Swarm rolled back or paused
// fails at once, with its tasks' errors.
//
// A slot left with two running tasks (moby/swarmkit#2242) is Swarm's race,
// not the stack's: it is given doubledWait to go away, then logged with the
// slot's task history, and remedied once by submitting the service's spec
// unchanged (`docker service scale svc=N`, N as it is), which makes
// swarmkit's orchestrator look at the slot again and shut the extra task
// down. The remedy is recorded in e.remedies and logged again at the end.
// Only a start-first replicated service can get there: on any other, or a
// second time, settle fails.
func (e *env) settle(t *testing.T, ctx context.Context, what string, bound time.Duration, also func() error) error {
	t.Helper()
	start := time.Now()
	var doubledSince time.Time
	var last *stackState
	cond := func() error {
		st, err := readStack(ctx)
		if err != nil {
			return err
		}
		last = st
		err = st.converged()
		var d *doubledSlot
		if errors.As(err, &d) {
			if doubledSince.IsZero() {
				doubledSince = time.Now()
			}
			if time.Since(doubledSince) >= doubledWait {
				return backoff.Permanent(err)
			}
			return err
		}
		doubledSince = time.Time{}
		var f *failedUpdate
		if errors.As(err, &f) {
			return backoff.Permanent(err)
		}
		if err != nil {
			return err
		}
		if also != nil {
			return also()
		}
		return nil
	}
	err := testenv.WaitFor(ctx, bound, cond)
	var d *doubledSlot
	if errors.As(err, &d) {
		t.Logf("%s: %v", what, d)
		if d.global || d.order != "start-first" || slices.ContainsFunc(e.remedies, func(r string) bool { return strings.HasPrefix(r, d.service+" ") }) {
			return fmt.Errorf("%s: %w", what, err)
		}
		remedy := fmt.Sprintf("%s slot %s: docker service scale %s=%d (the spec unchanged) after %s", d.service, d.slot, d.service, d.replicas, doubledWait)
		t.Logf("%s: REMEDY for moby/swarmkit#2242: %s", what, remedy)
		if _, err := docker(ctx, nil, "service", "scale", "--detach", fmt.Sprintf("%s=%d", d.service, d.replicas)); err != nil {
			return err
		}
		e.remedies = append(e.remedies, remedy)
		doubledSince = time.Time{}
		err = testenv.WaitFor(ctx, bound, cond)
	}
	if last != nil {
		if ended := last.endedSince(ctx, start, e.onNodeID); len(ended) > 0 {
			t.Logf("%s: tasks that ended meanwhile:\n  %s", what, strings.Join(ended, "\n  "))
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
