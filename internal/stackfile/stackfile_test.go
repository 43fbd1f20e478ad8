package stackfile

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/stack/deploy"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repository root not found: %v", err)
	}
	return dir
}

// The committed docker-stack.yml is the renderer's output for the defaults.
func TestCommittedStackIsRendered(t *testing.T) {
	want, err := Render(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			g, w := "", ""
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("docker-stack.yml differs from the renderer's output from line %d:\n  committed: %q\n  rendered:  %q\nrun: go run ./stack render > docker-stack.yml", i+1, g, w)
			}
		}
	}
}

func TestRenderRefusesBadSizes(t *testing.T) {
	for _, opt := range []Options{
		{Shards: 0, Workers: 1, WebReplicas: 1, AdminReplicas: 1, ResultReplicas: 1},
		{Shards: 1, Workers: 0, WebReplicas: 1, AdminReplicas: 1, ResultReplicas: 1},
		{Shards: 1, Workers: 1, WebReplicas: 0, AdminReplicas: 1, ResultReplicas: 1},
		{Shards: 33, Workers: 1, WebReplicas: 2, AdminReplicas: 1, ResultReplicas: 1},
	} {
		if _, err := Render(opt); err == nil {
			t.Errorf("Render(%+v): no error", opt)
		}
	}
}

// load parses a rendered stack with compose-go, as the Compose specification
// reads it, with the given deploy-time variables.
func load(t *testing.T, text []byte, env map[string]string) *types.Project {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "docker-stack.yml")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(dir, filepath.Dir(deploy.HAProxyConfigPath))
	os.MkdirAll(cfgDir, 0o755)
	os.WriteFile(filepath.Join(dir, deploy.HAProxyConfigPath), deploy.HAProxyConfig, 0o644)
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: path}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("surge", true) })
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	return p
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

func networks(s types.ServiceConfig) []string {
	var n []string
	for name := range s.Networks {
		n = append(n, name)
	}
	sort.Strings(n)
	return n
}

func sorted(s ...string) []string { sort.Strings(s); return s }

// Cross-checks with compose-go: services, images and their variables,
// networks, secrets, volumes, placement, health and update policies.
func TestStackStructure(t *testing.T) {
	for _, opt := range []Options{Defaults(), {Shards: 5, Workers: 3, WebReplicas: 2, AdminReplicas: 2, ResultReplicas: 3}} {
		t.Run(fmt.Sprintf("%d shards %d workers", opt.Shards, opt.Workers), func(t *testing.T) {
			text, err := Render(opt)
			if err != nil {
				t.Fatal(err)
			}
			checkStructure(t, opt, load(t, text, nil))
		})
	}
}

func checkStructure(t *testing.T, opt Options, p *types.Project) {
	var want []string
	shardNets := []string{}
	shardAddrs := []string{}
	for k := 1; k <= opt.Shards; k++ {
		want = append(want, fmt.Sprintf("web-%d", k), fmt.Sprintf("redis-%d", k))
		shardNets = append(shardNets, fmt.Sprintf("shard-%d", k))
		shardAddrs = append(shardAddrs, fmt.Sprintf("redis-%d:6379", k))
	}
	want = append(want, "haproxy", "admin", "result", "worker", "postgres")
	if got := p.ServiceNames(); !slices.Equal(sorted(got...), sorted(want...)) {
		t.Fatalf("services %v, want %v", got, want)
	}

	// Images: the official ones, and ours, by default.
	images := map[string]string{"haproxy": "haproxy:2.8", "postgres": "postgres:16", "admin": "surge:latest",
		"result": "surge:latest", "worker": "surge:latest"}
	for k := 1; k <= opt.Shards; k++ {
		images[fmt.Sprintf("web-%d", k)] = "surge:latest"
		images[fmt.Sprintf("redis-%d", k)] = "redis:7"
	}
	for name, s := range p.Services {
		if s.Image != images[name] {
			t.Errorf("%s: image %q, want %q", name, s.Image, images[name])
		}
	}

	// Networks: every one a service uses is declared; Redis and Postgres
	// sit on internal overlays only; only HAProxy publishes, in host mode.
	for name, n := range p.Networks {
		if n.Driver != "overlay" {
			t.Errorf("network %s: driver %q, want overlay", name, n.Driver)
		}
		if n.Internal != (name != "edge") {
			t.Errorf("network %s: internal = %v", name, n.Internal)
		}
	}
	for name, s := range p.Services {
		for n := range s.Networks {
			if _, ok := p.Networks[n]; !ok {
				t.Errorf("%s: network %s is not declared", name, n)
			}
		}
		if name == "haproxy" {
			if len(s.Ports) != 1 || s.Ports[0].Target != ListenPort || s.Ports[0].Published != "80" || s.Ports[0].Mode != "host" {
				t.Errorf("haproxy ports %+v, want 80 → %d in host mode", s.Ports, ListenPort)
			}
		} else if len(s.Ports) > 0 {
			t.Errorf("%s publishes %+v: only HAProxy may", name, s.Ports)
		}
	}
	check := func(name string, nets ...string) {
		if got := networks(p.Services[name]); !slices.Equal(got, sorted(nets...)) {
			t.Errorf("%s: networks %v, want %v", name, got, sorted(nets...))
		}
	}
	check("haproxy", "edge")
	check("postgres", "db")
	check("admin", "edge", "db")
	check("result", append([]string{"edge", "db"}, shardNets...)...)
	check("worker", append([]string{"db"}, shardNets...)...)
	for k := 1; k <= opt.Shards; k++ {
		web, redis := p.Services[fmt.Sprintf("web-%d", k)], p.Services[fmt.Sprintf("redis-%d", k)]
		check(web.Name, "edge", "db", fmt.Sprintf("shard-%d", k))
		check(redis.Name, fmt.Sprintf("shard-%d", k))
		if a := web.Networks["edge"]; a == nil || !slices.Equal(a.Aliases, []string{WebAlias}) {
			t.Errorf("%s: no alias %q on edge: HAProxy finds frontends as tasks.%s", web.Name, WebAlias, WebAlias)
		}
		if got := env(web, "SURGE_REDIS_ADDR"); got != fmt.Sprintf("redis-%d:6379", k) {
			t.Errorf("%s: SURGE_REDIS_ADDR %q", web.Name, got)
		}
		// Placement: the shard's frontend and its Redis on the shard's nodes.
		constraint := fmt.Sprintf("node.labels.surge.shard.%d == true", k)
		for _, s := range []types.ServiceConfig{web, redis} {
			if !slices.Equal(s.Deploy.Placement.Constraints, []string{constraint}) {
				t.Errorf("%s: placement %v, want %s", s.Name, s.Deploy.Placement.Constraints, constraint)
			}
		}
		if *web.Deploy.Replicas != opt.WebReplicas {
			t.Errorf("%s: %d replicas, want %d", web.Name, *web.Deploy.Replicas, opt.WebReplicas)
		}
		// Redis: AOF always, on its named volume.
		cmd := strings.Join(redis.Command, " ")
		if !strings.Contains(cmd, "--appendonly yes") || !strings.Contains(cmd, "--appendfsync always") || !strings.Contains(cmd, "--dir /data") {
			t.Errorf("%s: command %q lacks AOF always in /data", redis.Name, cmd)
		}
		if len(redis.Volumes) != 1 || redis.Volumes[0].Type != "volume" || redis.Volumes[0].Source != fmt.Sprintf("redis-%d-data", k) || redis.Volumes[0].Target != "/data" {
			t.Errorf("%s: volumes %+v", redis.Name, redis.Volumes)
		}
	}
	for _, name := range []string{"worker", "result"} {
		if got := env(p.Services[name], "SURGE_SHARDS"); got != strings.Join(shardAddrs, ",") {
			t.Errorf("%s: SURGE_SHARDS %q, want every shard %q", name, got, strings.Join(shardAddrs, ","))
		}
	}
	w := p.Services["worker"]
	if *w.Deploy.Replicas != opt.Workers {
		t.Errorf("worker: %d replicas, want %d", *w.Deploy.Replicas, opt.Workers)
	}
	if env(w, "SURGE_NAME") != "{{.Service.Name}}-{{.Task.Slot}}" || w.Hostname != "{{.Service.Name}}-{{.Task.Slot}}" {
		t.Errorf("worker: consumer name %q, hostname %q: want one stable per slot", env(w, "SURGE_NAME"), w.Hostname)
	}
	for name, n := range map[string]int{"admin": opt.AdminReplicas, "result": opt.ResultReplicas} {
		if got := *p.Services[name].Deploy.Replicas; got != n {
			t.Errorf("%s: %d replicas, want %d", name, got, n)
		}
	}
	if got := env(p.Services["admin"], "SURGE_MODE"); got != "admin" {
		t.Errorf("admin: SURGE_MODE %q", got)
	}
	pg := p.Services["postgres"]
	if !slices.Equal(pg.Deploy.Placement.Constraints, []string{"node.labels.surge.postgres == true"}) {
		t.Errorf("postgres: placement %v", pg.Deploy.Placement.Constraints)
	}
	if len(pg.Volumes) != 1 || pg.Volumes[0].Type != "volume" || pg.Volumes[0].Source != "postgres-data" || pg.Volumes[0].Target != "/var/lib/postgresql/data" {
		t.Errorf("postgres: volumes %+v", pg.Volumes)
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("%s: volume %s is not declared", name, v.Source)
			}
		}
	}

	// Secrets: declared, external, mounted where a *_FILE variable points,
	// and no secret in plain text.
	for name, sec := range p.Secrets {
		if !sec.External {
			t.Errorf("secret %s is not external: it would be read from a file at deploy time", name)
		}
	}
	for name, s := range p.Services {
		mounted := map[string]bool{}
		for _, sec := range s.Secrets {
			if _, ok := p.Secrets[sec.Source]; !ok {
				t.Errorf("%s: secret %s is not declared", name, sec.Source)
			}
			mounted["/run/secrets/"+sec.Source] = true
		}
		for key, v := range s.Environment {
			if v == nil {
				continue
			}
			if strings.HasSuffix(key, "_FILE") {
				if !mounted[*v] {
					t.Errorf("%s: %s=%s, which is not one of its secrets", name, key, *v)
				}
			} else if regexp.MustCompile(`PASSWORD|COOKIE_KEYS|SECRET`).MatchString(key) {
				t.Errorf("%s: %s in plain text; use %s_FILE and a secret", name, key, key)
			}
		}
	}
	wantFiles := map[string][]string{
		"postgres": {"POSTGRES_PASSWORD_FILE"}, "admin": {"SURGE_POSTGRES_PASSWORD_FILE", "SURGE_ADMIN_PASSWORD_FILE"},
		"result": {"SURGE_POSTGRES_PASSWORD_FILE"}, "worker": {"SURGE_POSTGRES_PASSWORD_FILE"},
		"web-1": {"SURGE_COOKIE_KEYS_FILE", "SURGE_POSTGRES_PASSWORD_FILE"},
	}
	for name, keys := range wantFiles {
		for _, k := range keys {
			if env(p.Services[name], k) == "" {
				t.Errorf("%s: %s not set", name, k)
			}
		}
	}

	// The HAProxy config is a Swarm config named after its content.
	hc, ok := p.Configs["haproxy"]
	if !ok || hc.Name != HAProxyConfigName() || !strings.HasSuffix(hc.File, deploy.HAProxyConfigPath) {
		t.Errorf("configs %+v: want haproxy, named %s, from %s", p.Configs, HAProxyConfigName(), deploy.HAProxyConfigPath)
	}
	if h := p.Services["haproxy"]; len(h.Configs) != 1 || h.Configs[0].Source != "haproxy" || h.Configs[0].Target != "/usr/local/etc/haproxy/haproxy.cfg" {
		t.Errorf("haproxy: configs %+v", h.Configs)
	}

	// Health, updates with rollback, restarts and resources everywhere.
	stopFirst := map[string]bool{"haproxy": true, "postgres": true, "worker": true}
	for k := 1; k <= opt.Shards; k++ {
		stopFirst[fmt.Sprintf("redis-%d", k)] = true
	}
	for name, s := range p.Services {
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Interval == nil {
			t.Errorf("%s: no health check: %+v", name, s.HealthCheck)
		}
		d := s.Deploy
		if d == nil {
			t.Errorf("%s: no deploy section", name)
			continue
		}
		if d.EndpointMode != "dnsrr" {
			t.Errorf("%s: endpoint_mode %q, want dnsrr", name, d.EndpointMode)
		}
		order := "start-first"
		if stopFirst[name] {
			order = "stop-first"
		}
		for what, u := range map[string]*types.UpdateConfig{"update_config": d.UpdateConfig, "rollback_config": d.RollbackConfig} {
			if u == nil || u.Order != order {
				t.Errorf("%s: %s %+v, want order %s", name, what, u, order)
			}
		}
		if d.UpdateConfig != nil && d.UpdateConfig.FailureAction != "rollback" {
			t.Errorf("%s: update failure_action %q, want rollback", name, d.UpdateConfig.FailureAction)
		}
		if d.RestartPolicy == nil || d.RestartPolicy.Condition != "any" {
			t.Errorf("%s: restart_policy %+v", name, d.RestartPolicy)
		}
		if r := d.Resources; r.Limits == nil || r.Limits.NanoCPUs <= 0 || r.Limits.MemoryBytes <= 0 || r.Reservations == nil || r.Reservations.MemoryBytes <= 0 {
			t.Errorf("%s: resources %+v", name, r)
		}
	}
	if p.Services["haproxy"].Deploy.Mode != "global" {
		t.Errorf("haproxy: mode %q, want global", p.Services["haproxy"].Deploy.Mode)
	}
}

// Every image, and the published port, come from a variable.
func TestStackVariables(t *testing.T) {
	text, err := Render(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	p := load(t, text, map[string]string{"SURGE_IMAGE": "registry.example/surge", "SURGE_TAG": "1.2.3",
		"REDIS_IMAGE": "r:1", "POSTGRES_IMAGE": "p:1", "HAPROXY_IMAGE": "h:1", "HTTP_PORT": "8000"})
	for name, s := range p.Services {
		want := "registry.example/surge:1.2.3"
		switch {
		case name == "haproxy":
			want = "h:1"
		case name == "postgres":
			want = "p:1"
		case strings.HasPrefix(name, "redis-"):
			want = "r:1"
		}
		if s.Image != want {
			t.Errorf("%s: image %q, want %q", name, s.Image, want)
		}
	}
	if got := p.Services["haproxy"].Ports[0].Published; got != "8000" {
		t.Errorf("HTTP_PORT=8000 published %q", got)
	}
}

// docker stack config: the compose v3 schema docker stack deploy applies,
// unknown keys and types, with interpolation, for the committed file and a
// larger one.
func TestDockerStackConfig(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("SKIP: no docker CLI on this machine")
	}
	root := repoRoot(t)
	big, err := Render(Options{Shards: 5, Workers: 3, WebReplicas: 1, AdminReplicas: 2, ResultReplicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	bigPath := filepath.Join(t.TempDir(), "docker-stack.yml")
	os.WriteFile(bigPath, big, 0o644)
	for _, path := range []string{filepath.Join(root, "docker-stack.yml"), bigPath} {
		cmd := exec.Command("docker", "stack", "config", "-c", path)
		cmd.Env = append(os.Environ(), "HTTP_PORT=", "SURGE_IMAGE=", "SURGE_TAG=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker stack config -c %s: %v\n%s", path, err, out)
		}
		for _, want := range []string{"image: surge:latest", "image: redis:7", "image: postgres:16", "image: haproxy:2.8", "published: 80", "mode: host"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("docker stack config -c %s: no %q in\n%s", path, want, out)
			}
		}
	}
}

// haproxy -c accepts the Swarm config, and it routes as the stack expects.
func TestHAProxyConfig(t *testing.T) {
	cfg := string(deploy.HAProxyConfig)
	for _, want := range []string{
		"nameserver swarm 127.0.0.11:53",
		fmt.Sprintf("bind :%d", ListenPort),
		"init-addr none resolvers docker",
		fmt.Sprintf("server-template web %d tasks.%s:%d check", WebSlots, WebAlias, ListenPort),
		fmt.Sprintf("server-template result 16 tasks.result:%d check", ListenPort),
		fmt.Sprintf("server-template admin 16 tasks.admin:%d check", ListenPort),
		"balance roundrobin", "option httpchk GET /healthz", "http-check expect status 200",
		"use_backend result if to_results", "use_backend admin if to_admin", "use_backend result if order_status reading",
		"default_backend web", "bind :8404",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	bin, err := launcher.LookBinary("haproxy")
	if err != nil {
		if testing.Short() {
			t.Skip("SKIP: no haproxy (make deps installs it)")
		}
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", filepath.Join(repoRoot(t), deploy.HAProxyConfigPath)).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}

// The per-address limit: RATE_PER_IP requests per 10 s, then 429; 0 is no
// limit. HAProxy runs here with the Swarm config, its binds moved to free
// loopback ports; no server resolves, so every request it lets through gets
// a 503.
func TestHAProxyRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: starts haproxy")
	}
	bin, err := launcher.LookBinary("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		limit    string
		want429s int
	}{{"5", 15}, {"0", 0}} {
		port, _ := launcher.FreePort()
		health, _ := launcher.FreePort()
		cfg := strings.Replace(string(deploy.HAProxyConfig), fmt.Sprintf("bind :%d", ListenPort), fmt.Sprintf("bind 127.0.0.1:%d", port), 1)
		cfg = strings.Replace(cfg, "bind :8404", fmt.Sprintf("bind 127.0.0.1:%d", health), 1)
		dir := t.TempDir()
		path := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := launcher.StartProc(launcher.ProcSpec{Name: "haproxy", Path: bin, Args: []string{"-db", "-f", path},
			Env: []string{"RATE_PER_IP=" + tc.limit}, Log: filepath.Join(dir, "haproxy.log")})
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if err := launcher.WaitTCP(context.Background(), addr, p); err != nil {
			p.Kill()
			log, _ := os.ReadFile(filepath.Join(dir, "haproxy.log"))
			t.Fatalf("RATE_PER_IP=%s: %v\n%s", tc.limit, err, log)
		}
		statuses := map[int]int{}
		for range 20 {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				p.Kill()
				t.Fatal(err)
			}
			resp.Body.Close()
			statuses[resp.StatusCode]++
		}
		p.Kill()
		if statuses[429] != tc.want429s || statuses[503] != 20-tc.want429s {
			t.Errorf("RATE_PER_IP=%s: statuses %v, want %d × 429 and the rest 503", tc.limit, statuses, tc.want429s)
		}
	}
}
