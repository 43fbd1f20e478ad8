// Package vagrant holds the Vagrantfile for a four-VM surge swarm and its
// offline checks: `ruby -c`, `vagrant validate --ignore-provider`, and the
// configuration it produces, read through a recording stand-in for Vagrant.
//
// The tools come from Debian's packages (ruby, vagrant); `make test-stack`
// installs them when missing and runs these tests with
// SURGE_REQUIRE_VAGRANT_TOOLS=1, so that a missing tool fails instead of
// skipping.
package vagrant

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("SURGE_REQUIRE_VAGRANT_TOOLS") == "1" {
			t.Fatalf("%s is required: %v", name, err)
		}
		t.Skipf("SKIP: no %s (make test-stack installs it from Debian's packages)", name)
	}
	return path
}

func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Env = append(append(os.Environ(), "VAGRANT_DOTFILE_PATH="+t.TempDir(), "VAGRANT_CHECKPOINT_DISABLE=1"), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestVagrantfileSyntax(t *testing.T) {
	out, err := run(t, nil, "ruby", "-c", "Vagrantfile")
	if err != nil || !strings.Contains(out, "Syntax OK") {
		t.Fatalf("ruby -c Vagrantfile: %v\n%s", err, out)
	}
}

func TestVagrantValidate(t *testing.T) {
	for _, tc := range []struct {
		env      []string
		machines []string
	}{
		{nil, []string{"manager", "worker1", "worker2", "worker3"}},
		{[]string{"SURGE_WORKERS=5"}, []string{"manager", "worker1", "worker2", "worker3", "worker4", "worker5"}},
	} {
		out, err := run(t, tc.env, "vagrant", "validate", "--ignore-provider")
		if err != nil || !strings.Contains(out, "Vagrantfile validated successfully") {
			t.Fatalf("vagrant validate %v: %v\n%s", tc.env, err, out)
		}
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if name, ok := strings.CutPrefix(l, "==> "); ok {
				name, _, _ = strings.Cut(name, ":")
				got = append(got, name)
			}
		}
		if !slices.Equal(got, tc.machines) {
			t.Errorf("vagrant validate %v: machines %v, want %v", tc.env, got, tc.machines)
		}
	}
	if out, err := run(t, []string{"SURGE_WORKERS=0"}, "vagrant", "validate", "--ignore-provider"); err == nil {
		t.Errorf("SURGE_WORKERS=0 validated:\n%s", out)
	}
}

// rec is what testdata/inspect.rb records: values set, and calls with their
// arguments and blocks.
type rec struct {
	Calls []struct {
		Set   string          `json:"set"`
		Value json.RawMessage `json:"value"`
		Call  string          `json:"call"`
		Args  []any           `json:"args"`
		KW    map[string]any  `json:"kw"`
		Block *rec            `json:"block"`
	} `json:"calls"`
	VM      *rec `json:"vm"`
	Trigger *rec `json:"trigger"`
}

func (r *rec) set(name string) string {
	if r == nil {
		return ""
	}
	for _, c := range r.Calls {
		if c.Set == name {
			var s any
			json.Unmarshal(c.Value, &s)
			return fmt.Sprint(s)
		}
	}
	return ""
}

func (r *rec) calls(name string) []int {
	var idx []int
	if r == nil {
		return nil
	}
	for i, c := range r.Calls {
		if c.Call == name {
			idx = append(idx, i)
		}
	}
	return idx
}

func inspect(t *testing.T, env ...string) *rec {
	t.Helper()
	out, err := run(t, env, "ruby", "testdata/inspect.rb")
	if err != nil {
		t.Fatalf("ruby testdata/inspect.rb: %v\n%s", err, out)
	}
	var r rec
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return &r
}

type machine struct {
	name, hostname, ip string
	primary            bool
	provisions         [][]any // path, args
	triggers           []string
}

func machines(t *testing.T, r *rec) []machine {
	var ms []machine
	for _, i := range r.VM.calls("define") {
		c := r.VM.Calls[i]
		m := machine{name: fmt.Sprint(c.Args[0]), primary: c.KW["primary"] == true}
		b := c.Block
		m.hostname = b.VM.set("hostname")
		for _, j := range b.VM.calls("network") {
			n := b.VM.Calls[j]
			if n.Args[0] == "private_network" {
				m.ip = fmt.Sprint(n.KW["ip"])
			}
		}
		for _, j := range b.VM.calls("provision") {
			p := b.VM.Calls[j]
			if p.KW["type"] != "shell" {
				t.Errorf("%s: provisioner %v is not a shell script", m.name, p.Args)
			}
			args, _ := p.KW["args"].([]any)
			m.provisions = append(m.provisions, append([]any{p.KW["path"]}, args...))
		}
		for _, j := range b.Trigger.calls("after") {
			m.triggers = append(m.triggers, fmt.Sprint(b.Trigger.Calls[j].Block.set("run")))
		}
		ms = append(ms, m)
	}
	return ms
}

func TestVagrantStructure(t *testing.T) {
	r := inspect(t)
	if box := r.VM.set("box"); box != "debian/bookworm64" {
		t.Errorf("box %q", box)
	}
	// A two-way synced folder carries the join token: never rsync.
	var synced []string
	for _, i := range r.VM.calls("synced_folder") {
		c := r.VM.Calls[i]
		if c.KW["disabled"] == true {
			continue
		}
		synced = append(synced, fmt.Sprint(c.Args[0], "->", c.Args[1]))
		if typ, ok := c.KW["type"]; ok && typ == "rsync" {
			t.Errorf("synced folder %v is rsync: one-way, the token would not reach the workers", c.Args)
		}
	}
	if !slices.Equal(synced, []string{"..->/surge"}) {
		t.Errorf("synced folders %v, want the repository at /surge", synced)
	}
	ms := machines(t, r)
	if len(ms) != 4 || ms[0].name != "manager" || !ms[0].primary {
		t.Fatalf("machines %+v: want the manager, then 3 workers", ms)
	}
	ips := map[string]bool{}
	for i, m := range ms {
		if m.hostname != m.name || !strings.HasPrefix(m.ip, "192.168.56.") || ips[m.ip] {
			t.Errorf("%s: hostname %q, ip %q (unique, on the private network)", m.name, m.hostname, m.ip)
		}
		ips[m.ip] = true
		if len(m.provisions) != 2 || m.provisions[0][0] != "provision/docker.sh" {
			t.Errorf("%s: provisioners %v: Docker first, then the swarm", m.name, m.provisions)
			continue
		}
		swarm := m.provisions[1]
		if i == 0 {
			if !slices.Equal(swarm, []any{"provision/manager.sh", m.ip}) {
				t.Errorf("manager: %v", swarm)
			}
		} else {
			if want := fmt.Sprintf("worker%d", i); m.name != want {
				t.Errorf("machine %d is %s, want %s", i, m.name, want)
			}
			if !slices.Equal(swarm, []any{"provision/worker.sh", ms[0].ip, m.ip}) {
				t.Errorf("%s: %v, want to join the manager at %s", m.name, swarm, ms[0].ip)
			}
		}
		for _, p := range m.provisions {
			if _, err := os.Stat(fmt.Sprint(p[0])); err != nil {
				t.Errorf("%s: %v", m.name, err)
			}
		}
		last := i == len(ms)-1
		if deploys := len(m.triggers) == 1 && strings.Contains(m.triggers[0], "/surge/vagrant/provision/deploy.sh 3"); deploys != last {
			t.Errorf("%s: triggers %v: the last worker, and only it, deploys with the worker count", m.name, m.triggers)
		}
	}

	// Box, sizes and count come from the environment.
	r = inspect(t, "SURGE_BOX=example/box", "SURGE_CPUS=3", "SURGE_MEMORY=3072", "SURGE_WORKERS=2", "SURGE_NET=10.9.8")
	if box := r.VM.set("box"); box != "example/box" {
		t.Errorf("SURGE_BOX: box %q", box)
	}
	for _, i := range r.VM.calls("provider") {
		b := r.VM.Calls[i].Block
		if b.set("cpus") != "3" || b.set("memory") != "3072" {
			t.Errorf("provider %v: cpus %s memory %s", r.VM.Calls[i].Args, b.set("cpus"), b.set("memory"))
		}
	}
	ms = machines(t, r)
	if len(ms) != 3 || ms[0].ip != "10.9.8.10" || ms[2].ip != "10.9.8.12" || !strings.Contains(strings.Join(ms[2].triggers, ""), "deploy.sh 2") {
		t.Errorf("SURGE_WORKERS=2 SURGE_NET=10.9.8: %+v", ms)
	}
}

// The provisioning scripts parse, and none opens the Docker API on TCP.
func TestProvisionScripts(t *testing.T) {
	scripts, _ := filepath.Glob("provision/*.sh")
	if len(scripts) != 4 {
		t.Fatalf("scripts %v", scripts)
	}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		b, _ := os.ReadFile(s)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "tcp://") && !strings.Contains(l, "grep") {
				t.Errorf("%s: %q", s, l)
			}
		}
	}
}
