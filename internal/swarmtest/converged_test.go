package swarmtest

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// converged judges by UpdateStatus and by the running tasks per slot, as
// Swarm means it; no Docker needed.
func TestConverged(t *testing.T) {
	spec := map[string]any{"ContainerSpec": map[string]any{"Image": "surge:new"}}
	old := map[string]any{"ContainerSpec": map[string]any{"Image": "surge:old"}}
	at := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	task := func(id string, slot int, desired, state string, s map[string]any) swarmTask {
		tk := swarmTask{ID: id, ServiceID: "svc", NodeID: "node1", Slot: slot, DesiredState: desired, CreatedAt: at, Spec: s}
		tk.Status.State, tk.Status.Timestamp = state, at
		if state == "failed" {
			tk.Status.Err = "task: non-zero exit (137): dockerexec: unhealthy container"
		}
		at = at.Add(time.Second)
		return tk
	}
	service := func(update string, replicas uint64, order string) swarmService {
		s := swarmService{ID: "svc", template: spec}
		s.Spec.Name = "surge_result"
		if replicas == 0 {
			s.Spec.Mode.Global = &struct{}{}
		} else {
			s.Spec.Mode.Replicated = &struct{ Replicas uint64 }{replicas}
		}
		s.Spec.UpdateConfig = &struct {
			Delay, Monitor time.Duration
			Order          string
		}{Order: order}
		if update != "" {
			s.UpdateStatus = &struct{ State, Message string }{update, "update " + update}
		}
		return s
	}
	two := []swarmTask{task("a", 1, "running", "running", spec), task("b", 2, "running", "running", spec)}
	for _, c := range []struct {
		name    string
		service swarmService
		tasks   []swarmTask
		want    string // "" converged; "doubled", "failed", or a substring of the error
	}{
		{"never updated", service("", 2, "stop-first"), two, ""},
		{"update completed", service("completed", 2, "stop-first"), append(two, task("c", 1, "shutdown", "shutdown", old)), ""},
		{"update in progress", service("updating", 2, "stop-first"), two, "surge_result: updating"},
		{"update rolled back", service("rollback_completed", 2, "stop-first"),
			append(two, task("c", 2, "shutdown", "failed", spec)), "failed"},
		{"update paused", service("paused", 2, "stop-first"), two, "failed"},
		// The fresh machine's failure: surge_result 3/2 in `docker service ls`.
		{"two running tasks in a slot after the update", service("completed", 2, "start-first"),
			[]swarmTask{task("a", 1, "running", "running", spec), task("old", 2, "shutdown", "failed", old),
				task("b", 2, "running", "running", spec), task("c", 2, "running", "running", spec)}, "doubled"},
		{"a slot's task still starting", service("completed", 2, "stop-first"),
			[]swarmTask{task("a", 1, "running", "running", spec), task("b", 2, "running", "starting", spec)}, "surge_result: task b slot 2 desired running, starting"},
		{"a task of the old spec", service("", 2, "stop-first"),
			[]swarmTask{task("a", 1, "running", "running", spec), task("b", 2, "running", "running", old)}, "runs an older spec"},
		{"a slot missing", service("completed", 2, "stop-first"), two[:1], "1 slots with a running task, want 2"},
		{"global, one node", service("", 0, "stop-first"), two[:1], ""},
		{"global, no task", service("", 0, "stop-first"), nil, "0 slots with a running task, want 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := &stackState{services: []swarmService{c.service}, tasks: map[string][]swarmTask{"svc": c.tasks}}
			err := st.converged()
			var d *doubledSlot
			var f *failedUpdate
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("converged: %v, want nil", err)
			case c.want == "":
			case c.want == "doubled":
				if !errors.As(err, &d) || d.slot != "2" || d.order != "start-first" || d.replicas != 2 || len(d.history) != 3 {
					t.Fatalf("converged: %#v, want slot 2 doubled with its 3 tasks", err)
				}
				if !strings.Contains(err.Error(), "moby/swarmkit#2242") || !strings.Contains(err.Error(), "unhealthy container") {
					t.Fatalf("the error does not name the race and the slot's history: %v", err)
				}
			case c.want == "failed":
				if !errors.As(err, &f) {
					t.Fatalf("converged: %v, want a failed update", err)
				}
			case err == nil || !strings.Contains(err.Error(), c.want) || errors.As(err, &d) || errors.As(err, &f):
				t.Fatalf("converged: %v, want not converged: %q", err, c.want)
			}
		})
	}
}

// A task's spec as the Engine API gives it leaves out what its service's
// TaskTemplate shows as unset or default (seen on Docker 20.10): the same
// spec. A changed image, or a changed list, is not.
func TestTaskSpecComparable(t *testing.T) {
	parse := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return comparable(v)
	}
	template := `{"ContainerSpec":{"Image":"surge:swarmtest","Env":["A=1"],"DNSConfig":{},"Privileges":{"NoNewPrivileges":false}},
		"Placement":{"Constraints":["node.labels.surge.shard.1 == true"]},"Runtime":"container","ForceUpdate":0}`
	for _, c := range []struct {
		task string
		same bool
	}{
		{`{"ContainerSpec":{"Image":"surge:swarmtest","Env":["A=1"]},"ForceUpdate":0}`, true},
		{`{"ContainerSpec":{"Image":"surge:swarmtest","Env":["A=1"]},"Placement":{"Constraints":["node.role == manager"]}}`, true},
		{`{"ContainerSpec":{"Image":"surge:swarmtest-roll","Env":["A=1"]}}`, false},
		{`{"ContainerSpec":{"Image":"surge:swarmtest","Env":["A=1","B=2"]}}`, false},
		{`{"ContainerSpec":{"Image":"surge:swarmtest","Env":["A=1"]},"ForceUpdate":1}`, false},
	} {
		if same := reflect.DeepEqual(parse(template), parse(c.task)); same != c.same {
			t.Errorf("task spec %s: same as the template %v, want %v", c.task, same, c.same)
		}
	}
}
