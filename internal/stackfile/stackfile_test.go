package stackfile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
	"github.com/surge-vote/surge/stack/deploy"
	"github.com/surge-vote/surge/stack/monitoring"
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
	writeConfigFiles(dir)
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

// writeConfigFiles writes the files the stack's Swarm configs name under
// dir, as they lie under the repository root.
func writeConfigFiles(dir string) {
	files := map[string][]byte{deploy.HAProxyConfigPath: deploy.HAProxyConfig}
	for _, f := range []string{monitoring.PrometheusConfig, monitoring.Rules, monitoring.GrafanaDatasource, monitoring.GrafanaProvider, monitoring.GrafanaDashboard} {
		files[monitoring.Dir+"/"+f] = monitoring.File(f)
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, content, 0o644)
	}
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
	tls := Defaults()
	tls.TLS = true
	alone := Options{Shards: 1, Workers: 1, WebReplicas: 1, AdminReplicas: 1, ResultReplicas: 1}
	mon := Defaults()
	mon.Monitoring = true
	monPublished := Options{Shards: 3, Workers: 2, WebReplicas: 2, AdminReplicas: 1, ResultReplicas: 2, TLS: true, Monitoring: true, PublishGrafana: true}
	for _, opt := range []Options{Defaults(), {Shards: 5, Workers: 3, WebReplicas: 2, AdminReplicas: 2, ResultReplicas: 3}, tls, alone, mon, monPublished} {
		t.Run(fmt.Sprintf("%d shards %d workers tls %v monitoring %v grafana published %v", opt.Shards, opt.Workers, opt.TLS, opt.Monitoring, opt.PublishGrafana), func(t *testing.T) {
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
	if opt.Monitoring {
		want = append(want, "prometheus", "grafana")
	}
	if got := p.ServiceNames(); !slices.Equal(sorted(got...), sorted(want...)) {
		t.Fatalf("services %v, want %v", got, want)
	}

	// Images: the official ones, and ours, by default.
	images := map[string]string{"haproxy": "haproxy:2.8", "postgres": "postgres:16", "admin": "surge:latest",
		"result": "surge:latest", "worker": "surge:latest", "prometheus": "prom/prometheus:v2.53.0", "grafana": "grafana/grafana:11.1.0"}
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
	wantPorts := []string{fmt.Sprintf("80:%d/host", ListenPort)}
	if opt.TLS {
		wantPorts = append(wantPorts, fmt.Sprintf("443:%d/host", TLSPort))
	}
	for name, s := range p.Services {
		for n := range s.Networks {
			if _, ok := p.Networks[n]; !ok {
				t.Errorf("%s: network %s is not declared", name, n)
			}
		}
		var ports []string
		for _, pc := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d/%s", pc.Published, pc.Target, pc.Mode))
		}
		switch {
		case name == "haproxy":
			if !slices.Equal(ports, wantPorts) {
				t.Errorf("haproxy ports %v, want %v", ports, wantPorts)
			}
		case name == "grafana" && opt.PublishGrafana:
			if want := []string{fmt.Sprintf("3000:%d/host", GrafanaPort)}; !slices.Equal(ports, want) {
				t.Errorf("grafana ports %v, want %v", ports, want)
			}
		case len(ports) > 0:
			t.Errorf("%s publishes %v: only HAProxy may (and Grafana when asked)", name, ports)
		}
	}
	// The stores in particular: nothing published, and only on internal
	// networks, so nothing outside the overlays reaches them.
	stores := []string{"postgres"}
	for k := 1; k <= opt.Shards; k++ {
		stores = append(stores, fmt.Sprintf("redis-%d", k))
	}
	for _, name := range stores {
		s := p.Services[name]
		if len(s.Ports) > 0 || len(s.Networks) == 0 {
			t.Errorf("%s: ports %+v, networks %v: want none published, and some network", name, s.Ports, networks(s))
		}
		for n := range s.Networks {
			if !p.Networks[n].Internal {
				t.Errorf("%s is on network %s, which is not internal", name, n)
			}
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
	if opt.Monitoring {
		// Prometheus reaches every surge service on db, and Grafana reaches
		// Prometheus on monitoring: both internal. Grafana is on edge only
		// to publish its port.
		check("prometheus", "db", "monitoring")
		if opt.PublishGrafana {
			check("grafana", "edge", "monitoring")
		} else {
			check("grafana", "monitoring")
		}
		for _, name := range []string{"web-1", "admin", "result", "worker"} {
			if _, ok := p.Services[name].Networks["db"]; !ok {
				t.Errorf("%s is not on db: Prometheus cannot scrape it", name)
			}
		}
	}
	for k := 1; k <= opt.Shards; k++ {
		web, redis := p.Services[fmt.Sprintf("web-%d", k)], p.Services[fmt.Sprintf("redis-%d", k)]
		check(web.Name, append([]string{"edge", "db"}, shardNets...)...)
		check(redis.Name, fmt.Sprintf("shard-%d", k))
		if a := web.Networks["edge"]; a == nil || !slices.Equal(a.Aliases, []string{WebAlias}) {
			t.Errorf("%s: no alias %q on edge: HAProxy finds frontends as tasks.%s", web.Name, WebAlias, WebAlias)
		}
		// Prometheus finds every shard's frontends as tasks.web on db; the
		// stack without monitoring is unchanged.
		if a := web.Networks["db"]; (a != nil && slices.Equal(a.Aliases, []string{WebAlias})) != opt.Monitoring {
			t.Errorf("%s: aliases on db %+v with monitoring %v: want %q exactly with monitoring", web.Name, a, opt.Monitoring, WebAlias)
		}
		if got := env(web, "SURGE_REDIS_ADDR"); got != fmt.Sprintf("redis-%d:6379", k) {
			t.Errorf("%s: SURGE_REDIS_ADDR %q", web.Name, got)
		}
		// Each frontend writes its copies to two shards: it knows them all,
		// and which is its own.
		if got := env(web, "SURGE_SHARDS"); got != strings.Join(shardAddrs, ",") {
			t.Errorf("%s: SURGE_SHARDS %q, want %q", web.Name, got, strings.Join(shardAddrs, ","))
		}
		if got := env(web, "SURGE_SHARD"); got != fmt.Sprint(k) {
			t.Errorf("%s: SURGE_SHARD %q, want %d", web.Name, got, k)
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
	if opt.Monitoring {
		checkMonitoring(t, opt, p)
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
	if _, ok := p.Volumes["prometheus-data"]; ok != opt.Monitoring {
		t.Errorf("volume prometheus-data declared %v with monitoring %v", ok, opt.Monitoring)
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
	// TLS: the certificate is a secret of HAProxy's only, and TLS_CRT (which
	// turns HTTPS on in haproxy.cfg) names it.
	hap := p.Services["haproxy"]
	_, declared := p.Secrets[TLSSecret]
	if declared != opt.TLS || (env(hap, "TLS_CRT") != "") != opt.TLS {
		t.Errorf("TLS %v, but secret %s declared %v, haproxy TLS_CRT %q", opt.TLS, TLSSecret, declared, env(hap, "TLS_CRT"))
	}
	if opt.TLS {
		if len(hap.Secrets) != 1 || hap.Secrets[0].Source != TLSSecret || env(hap, "TLS_CRT") != "/run/secrets/"+TLSSecret {
			t.Errorf("haproxy: secrets %+v, TLS_CRT %q: want %s mounted where TLS_CRT points", hap.Secrets, env(hap, "TLS_CRT"), TLSSecret)
		}
		if got := env(hap, "HTTPS_PORT"); got != "443" {
			t.Errorf("haproxy: HTTPS_PORT %q, want the published HTTPS port, 443 by default", got)
		}
		for name, s := range p.Services {
			for _, sec := range s.Secrets {
				if sec.Source == TLSSecret && name != "haproxy" {
					t.Errorf("%s mounts the TLS key", name)
				}
			}
		}
	}
	if _, declared := p.Secrets[GrafanaPasswordSecret]; declared != opt.Monitoring {
		t.Errorf("secret %s declared %v with monitoring %v", GrafanaPasswordSecret, declared, opt.Monitoring)
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
	// The stores, HAProxy and the workers are stop-first; a stateless
	// service is stop-first with two replicas or more (moby/swarmkit#2242),
	// start-first alone.
	stopFirst := map[string]bool{"haproxy": true, "postgres": true, "worker": true, "prometheus": true,
		"admin": opt.AdminReplicas > 1, "result": opt.ResultReplicas > 1}
	for k := 1; k <= opt.Shards; k++ {
		stopFirst[fmt.Sprintf("redis-%d", k)] = true
		stopFirst[fmt.Sprintf("web-%d", k)] = opt.WebReplicas > 1
	}
	for name, s := range p.Services {
		h := s.HealthCheck
		if h == nil || h.Disable || len(h.Test) < 2 || h.Interval == nil || h.Timeout == nil || h.Retries == nil {
			t.Errorf("%s: no health check: %+v", name, h)
		} else if refused, stuck := time.Duration(*h.Retries)*time.Duration(*h.Interval), time.Duration(*h.Retries)*time.Duration(*h.Interval+*h.Timeout); *h.Timeout < types.Duration(10*time.Second) || refused < 20*time.Second || stuck < 2*time.Minute {
			// A probe can take seconds on a loaded node: slow probes, or a
			// dependency restarting, must not get a healthy task killed.
			t.Errorf("%s: health timeout %s, replaced after %s of refusals or %s of timeouts: want at least 10s, 20s and 2m", name, h.Timeout, refused, stuck)
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

// Every image, and the published ports, come from a variable.
func TestStackVariables(t *testing.T) {
	opt := Defaults()
	opt.TLS = true
	text, err := Render(opt)
	if err != nil {
		t.Fatal(err)
	}
	p := load(t, text, map[string]string{"SURGE_IMAGE": "registry.example/surge", "SURGE_TAG": "1.2.3",
		"REDIS_IMAGE": "r:1", "POSTGRES_IMAGE": "p:1", "HAPROXY_IMAGE": "h:1", "HTTP_PORT": "8000", "HTTPS_PORT": "8001"})
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
	hap := p.Services["haproxy"]
	if got := hap.Ports[0].Published; got != "8000" {
		t.Errorf("HTTP_PORT=8000 published %q", got)
	}
	// HAProxy redirects to the published HTTPS port, so it must know it.
	if got, inside := hap.Ports[1].Published, env(hap, "HTTPS_PORT"); got != "8001" || inside != "8001" {
		t.Errorf("HTTPS_PORT=8001 published %q, and HAProxy's HTTPS_PORT is %q", got, inside)
	}
	// The edge caps are on by default, with `stack run`'s values.
	for key, want := range map[string]int{"CONN_PER_IP": ConnPerIP, "STREAMS_PER_RESULT": StreamsPerResult} {
		if got := env(hap, key); got != fmt.Sprint(want) {
			t.Errorf("haproxy: %s %q by default, want %d", key, got, want)
		}
	}
	if ConnPerIP != launcher.DefaultConnPerIP || StreamsPerResult != launcher.DefaultStreamsPerResult {
		t.Errorf("Swarm caps %d, %d differ from stack run's %d, %d", ConnPerIP, StreamsPerResult, launcher.DefaultConnPerIP, launcher.DefaultStreamsPerResult)
	}
}

// docker stack config: the compose v3 schema docker stack deploy applies,
// unknown keys and types, with interpolation, for the committed file, a
// larger one, and the TLS and monitoring variants.
func TestDockerStackConfig(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("SKIP: no docker CLI on this machine")
	}
	root := repoRoot(t)
	big, err := Render(Options{Shards: 5, Workers: 3, WebReplicas: 1, AdminReplicas: 2, ResultReplicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	tlsOpt := Defaults()
	tlsOpt.TLS = true
	tls, err := Render(tlsOpt)
	if err != nil {
		t.Fatal(err)
	}
	monOpt := Defaults()
	monOpt.Monitoring, monOpt.PublishGrafana = true, true
	mon, err := Render(monOpt)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeConfigFiles(dir)
	bigPath, tlsPath, monPath := filepath.Join(dir, "docker-stack.yml"), filepath.Join(dir, "docker-stack.tls.yml"), filepath.Join(dir, "docker-stack.monitoring.yml")
	os.WriteFile(bigPath, big, 0o644)
	os.WriteFile(tlsPath, tls, 0o644)
	os.WriteFile(monPath, mon, 0o644)
	common := []string{"image: surge:latest", "image: redis:7", "image: postgres:16", "image: haproxy:2.8", "published: 80", "mode: host"}
	for path, wants := range map[string][]string{
		filepath.Join(root, "docker-stack.yml"): common,
		bigPath:                                 common,
		tlsPath:                                 append([]string{"published: 443", fmt.Sprintf("target: %d", TLSPort), "TLS_CRT: /run/secrets/" + TLSSecret}, common...),
		monPath: append([]string{"image: prom/prometheus:v2.53.0", "image: grafana/grafana:11.1.0", "published: 3000",
			"GF_SECURITY_ADMIN_PASSWORD__FILE: /run/secrets/" + GrafanaPasswordSecret}, common...),
	} {
		cmd := exec.Command("docker", "stack", "config", "-c", path)
		cmd.Env = append(os.Environ(), "HTTP_PORT=", "HTTPS_PORT=", "SURGE_IMAGE=", "SURGE_TAG=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker stack config -c %s: %v\n%s", path, err, out)
		}
		for _, want := range wants {
			if !strings.Contains(string(out), want) {
				t.Errorf("docker stack config -c %s: no %q in\n%s", path, want, out)
			}
		}
	}
}

// haproxy -c accepts the Swarm config, with and without TLS, and it routes
// as the stack expects.
func TestHAProxyConfig(t *testing.T) {
	cfg := string(deploy.HAProxyConfig)
	for _, want := range []string{
		"nameserver swarm 127.0.0.11:53",
		fmt.Sprintf("bind :%d", ListenPort),
		fmt.Sprintf(`bind :%d ssl crt "${TLS_CRT}"`, TLSPort), ".if defined(TLS_CRT)",
		"init-addr none resolvers docker",
		fmt.Sprintf("server-template web %d tasks.%s:%d check %s", WebSlots, WebAlias, ListenPort, launcher.EjectOnError),
		// The launcher's check timings, which launcher.RiseTime sums up.
		fmt.Sprintf("default-server inter %s fastinter %s downinter %s fall %d rise %d ", launcher.CheckInter,
			launcher.CheckFastInter, launcher.CheckDownInter, launcher.CheckFall, launcher.CheckRise),
		fmt.Sprintf("server-template result 16 tasks.result:%d check", ListenPort),
		fmt.Sprintf("server-template admin 16 tasks.admin:%d check", ListenPort),
		"balance roundrobin", "option httpchk GET /healthz", "http-check expect status 200",
		"use_backend result if to_results", "use_backend admin if to_admin", "use_backend result if order_status reading",
		"default_backend web", "bind :8404",
		// Streams on a backend of their own, with their own cap; caps that
		// hold without the stack's environment too.
		"use_backend stream if to_stream", "option abortonclose", "maxconn 10000",
		fmt.Sprintf(`server-template stream 16 tasks.result:%d check maxconn "${STREAMS_PER_RESULT}"`, ListenPort),
		fmt.Sprintf("presetenv CONN_PER_IP %d", ConnPerIP), fmt.Sprintf("presetenv STREAMS_PER_RESULT %d", StreamsPerResult),
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
	crt, _, err := launcher.SelfSignedCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][]string{
		"plain":                {},
		"TLS on 443":           {"TLS_CRT=" + crt, "HTTPS_PORT=443"},
		"TLS on another port":  {"TLS_CRT=" + crt, "HTTPS_PORT=8443"},
		"TLS, missing the crt": {"TLS_CRT=" + filepath.Join(t.TempDir(), "none.pem"), "HTTPS_PORT=443"},
		"no caps":              {"CONN_PER_IP=0", "STREAMS_PER_RESULT=0"},
	} {
		cmd := exec.Command(bin, "-c", "-f", filepath.Join(repoRoot(t), deploy.HAProxyConfigPath))
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		// The check must be able to fail: a crt that is not there is refused.
		if wantOK := !strings.Contains(name, "missing"); (err == nil) != wantOK {
			t.Errorf("%s: haproxy -c: %v, want success %v\n%s", name, err, wantOK, out)
		}
	}
}

// haproxy runs HAProxy with the Swarm config and env, its binds moved to
// free loopback ports. No server resolves, so every request it lets through
// gets a 503. It returns the HTTP and HTTPS addresses.
func haproxy(t *testing.T, env ...string) (httpAddr, httpsAddr string) {
	t.Helper()
	return haproxyWith(t, string(deploy.HAProxyConfig), env...)
}

// haproxyWith is haproxy with the config cfg.
func haproxyWith(t *testing.T, cfg string, env ...string) (httpAddr, httpsAddr string) {
	t.Helper()
	bin, err := launcher.LookBinary("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	ports := map[int]int{}
	for _, inside := range []int{ListenPort, TLSPort, 8404} {
		if ports[inside], err = launcher.FreePort(); err != nil {
			t.Fatal(err)
		}
		cfg = strings.Replace(cfg, fmt.Sprintf("bind :%d", inside), fmt.Sprintf("bind 127.0.0.1:%d", ports[inside]), 1)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := launcher.StartProc(launcher.ProcSpec{Name: "haproxy", Path: bin, Args: []string{"-db", "-f", path},
		Env: env, Log: filepath.Join(dir, "haproxy.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	httpAddr, httpsAddr = fmt.Sprintf("127.0.0.1:%d", ports[ListenPort]), fmt.Sprintf("127.0.0.1:%d", ports[TLSPort])
	if err := launcher.WaitTCP(context.Background(), httpAddr, p); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "haproxy.log"))
		t.Fatalf("haproxy %v: %v\n%s", env, err, log)
	}
	return httpAddr, httpsAddr
}

// The Swarm config takes a frontend that answers 503 (its Redis is gone)
// out of rotation at its first 503, and puts it back once healthy: its web
// server-template, with its own options, is pointed at two stand-ins.
func TestHAProxyDropsAFailingFrontendAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: starts haproxy")
	}
	cfg := string(deploy.HAProxyConfig)
	line := regexp.MustCompile(`(?m)^(\s*)server-template web \d+ \S+ (.*)$`)
	if !line.MatchString(cfg) {
		t.Fatal("haproxy.cfg has no web server-template")
	}
	testenv.FrontendFailover(t, launcher.RiseTime, func(web []string) string {
		servers := line.ReplaceAllString(cfg, "${1}server web0 "+web[0]+" ${2}\n${1}server web1 "+web[1]+" ${2}")
		front, _ := haproxyWith(t, servers)
		return front
	})
}

// The per-address limit: RATE_PER_IP requests per 10 s, then 429; 0 is no
// limit.
func TestHAProxyRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: starts haproxy")
	}
	for _, tc := range []struct {
		limit    string
		want429s int
	}{{"5", 15}, {"0", 0}} {
		addr, _ := haproxy(t, "RATE_PER_IP="+tc.limit)
		statuses := map[int]int{}
		for range 20 {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			statuses[resp.StatusCode]++
		}
		if statuses[429] != tc.want429s || statuses[503] != 20-tc.want429s {
			t.Errorf("RATE_PER_IP=%s: statuses %v, want %d × 429 and the rest 503", tc.limit, statuses, tc.want429s)
		}
	}
}

// TLS at HAProxy (the --tls stack): plain HTTP is redirected to the same
// host and path on the published HTTPS port, and every HTTPS answer, even
// one HAProxy makes itself, carries HSTS. Without TLS_CRT there is no HTTPS
// and no redirect.
func TestHAProxyTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: starts haproxy")
	}
	dir := t.TempDir()
	crt, certPEM, err := launcher.SelfSignedCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 5 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name, httpsPort, host string
		tls                   bool
		location              string // for http://<host>/results/x?y=1
	}{
		{name: "published on 443", tls: true, httpsPort: "443", host: "surge.example:8000", location: "https://surge.example/results/x?y=1"},
		{name: "published elsewhere", tls: true, httpsPort: "8001", host: "surge.example", location: "https://surge.example:8001/results/x?y=1"},
		{name: "IPv6 host", tls: true, httpsPort: "8001", host: "[::1]:8000", location: "https://[::1]:8001/results/x?y=1"},
		{name: "no TLS", host: "surge.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.tls {
				env = []string{"TLS_CRT=" + crt, "HTTPS_PORT=" + tc.httpsPort}
			}
			httpAddr, httpsAddr := haproxy(t, env...)
			req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/results/x?y=1", nil)
			req.Host = tc.host
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if !tc.tls {
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Strict-Transport-Security") != "" {
					t.Errorf("plain HTTP without TLS: %s, HSTS %q: want it served (503, no server), no HSTS", resp.Status, resp.Header.Get("Strict-Transport-Security"))
				}
				if _, err := client.Get("https://" + httpsAddr + "/"); err == nil {
					t.Error("HTTPS answered without TLS_CRT")
				}
				return
			}
			if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != tc.location {
				t.Errorf("plain HTTP: %s to %q, want 301 to %q", resp.Status, resp.Header.Get("Location"), tc.location)
			}
			resp, err = client.Get("https://" + httpsAddr + "/results/x")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
				t.Errorf("HTTPS: %s, HSTS %q: want HAProxy's 503 with HSTS", resp.Status, resp.Header.Get("Strict-Transport-Security"))
			}
		})
	}
}

// The Swarm edge: one address holds at most CONN_PER_IP connections (the
// next is closed unanswered) while another address is served, and /metrics
// is never public.
func TestHAProxyEdgeCaps(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: starts haproxy")
	}
	addr, _ := haproxy(t, "CONN_PER_IP=2")
	// Every client below dials from an address of its own. A connection
	// HAProxy has not yet seen close (an earlier GET's, or the launcher's
	// readiness probe from 127.0.0.1) must never count against the cap on
	// the held ones: it made the second held connection the one refused, and
	// the third then took its place.
	dialer := func(source string) *net.Dialer {
		return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: dialer("127.0.0.3").DialContext}}
	for path, want := range map[string]int{"/metrics": 404, "/%6detrics": 404, "//metrics/": 404, "/results/api/stream": 503, "/": 503} {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// Two connections held open. Each is answered once first, so HAProxy has
	// accepted and counted it before the next is dialled: a dial returns when
	// the kernel has the connection, and HAProxy's threads may accept queued
	// ones in any order (the third, accepted before a held one, was answered
	// and the held one refused). They then stay open, idle (keep-alive).
	const holder = "127.0.0.4"
	for i := range 2 {
		c, err := dialer(holder).Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("held connection %d: %v", i+1, err)
		}
		resp.Body.Close()
		if resp.Close {
			t.Fatalf("held connection %d: HAProxy closes it after its %s", i+1, resp.Status)
		}
	}
	answer := func(source string) (string, error) {
		c, err := dialer(source).Dial("tcp", addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		return line, err
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if line, err := answer(holder); err == nil {
			return fmt.Errorf("a third connection from the same address was answered %q", line)
		}
		return nil
	})
	if line, err := answer("127.0.0.2"); err != nil || !strings.Contains(line, " 503 ") {
		t.Fatalf("another address: %q, %v; want HAProxy's 503 (no server)", line, err)
	}
}

// checkMonitoring checks Prometheus and Grafana offline: their Swarm
// configs are stack/monitoring's files, Prometheus scrapes through Swarm DNS
// a task list of every surge service on a network it shares with them, and
// Grafana's provisioning points at that Prometheus and at the dashboard
// where the stack mounts it. Grafana itself is not run (it is not in Debian
// and cannot be pulled here).
func checkMonitoring(t *testing.T, opt Options, p *types.Project) {
	t.Helper()
	mounts := map[string]string{} // target -> file under stack/monitoring
	for _, name := range []string{"prometheus", "grafana"} {
		for _, c := range p.Services[name].Configs {
			cfg, ok := p.Configs[c.Source]
			if !ok {
				t.Errorf("%s: config %s is not declared", name, c.Source)
				continue
			}
			file, found := strings.CutPrefix(filepath.ToSlash(cfg.File), filepath.ToSlash(p.WorkingDir)+"/"+monitoring.Dir+"/")
			if !found {
				t.Errorf("%s: config %s from %s, not from %s", name, c.Source, cfg.File, monitoring.Dir)
				continue
			}
			sum := sha256.Sum256(monitoring.File(file))
			if !strings.HasSuffix(cfg.Name, hex.EncodeToString(sum[:])[:10]) {
				t.Errorf("config %s is named %s, without the hash of %s: a changed file would not be deployed", c.Source, cfg.Name, file)
			}
			mounts[c.Target] = file
		}
	}
	for target, file := range map[string]string{
		"/etc/prometheus/prometheus.yml":                       monitoring.PrometheusConfig,
		"/etc/prometheus/rules.yml":                            monitoring.Rules,
		"/etc/grafana/provisioning/datasources/prometheus.yml": monitoring.GrafanaDatasource,
		"/etc/grafana/provisioning/dashboards/surge.yml":       monitoring.GrafanaProvider,
	} {
		if mounts[target] != file {
			t.Errorf("%s holds %q, want %s", target, mounts[target], file)
		}
	}
	prom := p.Services["prometheus"]
	if !slices.Contains(prom.Command, "--config.file=/etc/prometheus/prometheus.yml") || len(prom.Volumes) != 1 || prom.Volumes[0].Target != "/prometheus" {
		t.Errorf("prometheus: command %v, volumes %+v", prom.Command, prom.Volumes)
	}

	// prometheus.yml: one job per surge service, each a DNS lookup of its
	// tasks on a network Prometheus is on, at the services' port; the rules
	// file beside it.
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(monitoring.File(monitoring.PrometheusConfig), &pc); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pc.RuleFiles, []string{"rules.yml"}) {
		t.Errorf("prometheus.yml rule_files %v, want rules.yml, mounted beside it", pc.RuleFiles)
	}
	var jobs []string
	for _, sc := range pc.ScrapeConfigs {
		jobs = append(jobs, sc.JobName)
		if len(sc.DNSSDConfigs) != 1 || len(sc.DNSSDConfigs[0].Names) != 1 || sc.DNSSDConfigs[0].Type != "A" || sc.DNSSDConfigs[0].Port != ListenPort {
			t.Errorf("job %s: dns_sd_configs %+v, want one A lookup on port %d", sc.JobName, sc.DNSSDConfigs, ListenPort)
			continue
		}
		name, ok := strings.CutPrefix(sc.DNSSDConfigs[0].Names[0], "tasks.")
		if !ok || name != sc.JobName {
			t.Errorf("job %s looks up %s, want tasks.%s", sc.JobName, sc.DNSSDConfigs[0].Names[0], sc.JobName)
		}
		// The service (or, for web, every shard's frontend by its alias) on
		// a network Prometheus shares.
		var answering []string
		for svcName, s := range p.Services {
			for n, sn := range s.Networks {
				if _, shared := prom.Networks[n]; shared && (svcName == name || sn != nil && slices.Contains(sn.Aliases, name)) {
					answering = append(answering, svcName)
				}
			}
		}
		want := []string{name}
		if name == WebAlias {
			want = nil
			for k := 1; k <= opt.Shards; k++ {
				want = append(want, fmt.Sprintf("web-%d", k))
			}
		}
		if !slices.Equal(sorted(answering...), sorted(want...)) {
			t.Errorf("tasks.%s on Prometheus's networks: %v, want %v", name, answering, want)
		}
	}
	if !slices.Equal(sorted(jobs...), sorted("web", "admin", "result", "worker")) {
		t.Errorf("prometheus.yml jobs %v, want web, admin, result, worker", jobs)
	}

	// Grafana's provisioning: the datasource is this Prometheus, on a network
	// Grafana shares with it; the dashboard provider reads the folder the
	// dashboard is mounted in.
	var ds struct {
		Datasources []struct{ URL, UID, Type string } `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(monitoring.File(monitoring.GrafanaDatasource), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != fmt.Sprintf("http://prometheus:%d", PromPort) {
		t.Errorf("Grafana datasources %+v, want the prometheus service on port %d", ds.Datasources, PromPort)
	}
	if _, ok := p.Services["grafana"].Networks["monitoring"]; !ok {
		t.Error("grafana is not on monitoring, where Prometheus is")
	}
	var prov struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(monitoring.File(monitoring.GrafanaProvider), &prov); err != nil {
		t.Fatal(err)
	}
	var dashboard string
	for target, file := range mounts {
		if file == monitoring.GrafanaDashboard {
			dashboard = target
		}
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || dashboard == "" || path.Dir(dashboard) != prov.Providers[0].Options.Path {
		t.Errorf("Grafana dashboard providers %+v, dashboard mounted at %q: want one file provider reading its folder", prov.Providers, dashboard)
	}
	var db struct {
		UID string `json:"uid"`
	}
	if err := json.Unmarshal(monitoring.File(monitoring.GrafanaDashboard), &db); err != nil || db.UID == "" {
		t.Errorf("dashboard: %v, uid %q", err, db.UID)
	}
}
