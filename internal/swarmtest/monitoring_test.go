package swarmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/surge-vote/surge/internal/stackfile"
	"github.com/surge-vote/surge/internal/testenv"
	"github.com/surge-vote/surge/stack/monitoring"
)

// Bounds of the monitoring step, from prometheus.yml and rules.yml: a new
// task is found at the next DNS refresh (15 s) and scraped within a scrape
// interval (15 s); SurgeShardUnreachable fires after an evaluation (15 s)
// sees a failed backlog read (a scrape, 15 s) and then 1 minute (its for)
// of them. Doubled for a loaded machine (slow).
const (
	targetsBound = slow * (15 + 15 + 15) * time.Second
	alertBound   = slow * (15 + 15 + 60 + 15) * time.Second
)

// writeMonitoringStack renders the stack for opt (with Monitoring) into a
// new directory, with the files its configs name, and without Grafana,
// which is not in Debian and cannot be pulled here: its service, secret
// and configs are taken out.
func writeMonitoringStack(t *testing.T, opt stackfile.Options, name string) string {
	t.Helper()
	file := writeStack(t, opt, name)
	dir := filepath.Dir(file)
	for _, f := range []string{monitoring.PrometheusConfig, monitoring.Rules} {
		path := filepath.Join(dir, filepath.FromSlash(monitoring.Dir), filepath.FromSlash(f))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, monitoring.File(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"services", "secrets", "configs"} {
		m, ok := doc[section].(map[string]any)
		if !ok {
			t.Fatalf("%s: no %s", name, section)
		}
		for key := range m {
			if strings.HasPrefix(key, "grafana") || key == stackfile.GrafanaPasswordSecret {
				delete(m, key)
			}
		}
	}
	if _, ok := doc["services"].(map[string]any)["prometheus"]; !ok {
		t.Fatalf("%s: no prometheus service", name)
	}
	if b, err = yaml.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// prometheusAPI asks the stack's Prometheus for path (its HTTP API, from
// inside its container: its port is not published) and decodes the data.
func (e *env) prometheusAPI(ctx context.Context, path string, data any) error {
	ids, err := e.runningContainers(ctx, stack+"_prometheus")
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return fmt.Errorf("%d running Prometheus containers, want 1", len(ids))
	}
	out, err := e.on(ctx, ids[0].node, "exec", ids[0].id, "wget", "-q", "-O", "-", "http://127.0.0.1:9090"+path)
	if err != nil {
		return err
	}
	var resp struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Status != "success" {
		return fmt.Errorf("GET %s: %v: %.300s", path, err, out)
	}
	return json.Unmarshal(resp.Data, data)
}

// checkMonitoring redeploys the running stack rendered with --monitoring
// (and --tls, as it runs; Prometheus with the stand-in image, no Grafana),
// waits until Prometheus sees every task of web, admin, result and the
// workers up, then takes shard 1's Redis away (scaled to 0, so Swarm does
// not restart it within the alert's minute) and waits for
// SurgeShardUnreachable to fire for shard 1, and brings it back.
func (e *env) checkMonitoring(t *testing.T, ctx context.Context, step func(string, ...any)) {
	ts := time.Now()
	opt := stackfile.Defaults()
	opt.Shards, opt.TLS, opt.Monitoring = len(e.webServices), true, true
	file := writeMonitoringStack(t, opt, "docker-stack.monitoring.yml")
	if out, err := docker(ctx, nil, "stack", "deploy", "--resolve-image", "never", "-c", file, stack); err != nil {
		t.Fatalf("monitoring: %v\n%s", err, out)
	}
	e.expectedServices = append(e.expectedServices, stack+"_prometheus")
	slices.Sort(e.expectedServices)
	// The frontends gain an alias on db: they roll. Prometheus starts.
	st, err := readStack(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bound := st.rollBound(e.webServices...) + slow*(st.verdict(stack+"_prometheus")+haproxyFind)
	if err := e.settle(t, ctx, "monitoring", bound, e.routed); err != nil {
		t.Fatal(err)
	}
	step("monitoring: redeployed with --monitoring in %s (bound %s)", time.Since(ts).Round(time.Millisecond), bound)

	// Every task of every scraped service is a target, and up.
	want := map[string]int{}
	for job, services := range map[string][]string{"web": e.webServices, "admin": {stack + "_admin"},
		"result": {stack + "_result"}, "worker": {stack + "_worker"}} {
		for _, svc := range services {
			want[job] += len(e.containers(t, svc))
		}
	}
	type target struct {
		Labels    map[string]string `json:"labels"`
		Health    string            `json:"health"`
		LastError string            `json:"lastError"`
	}
	ts = time.Now()
	testenv.Eventually(t, targetsBound, func() error {
		var targets struct {
			ActiveTargets []target `json:"activeTargets"`
		}
		if err := e.prometheusAPI(ctx, "/api/v1/targets?state=active", &targets); err != nil {
			return err
		}
		up := map[string]int{}
		var down []string
		for _, tg := range targets.ActiveTargets {
			if tg.Health == "up" {
				up[tg.Labels["job"]]++
			} else {
				down = append(down, fmt.Sprintf("%s %s: %s %s", tg.Labels["job"], tg.Labels["instance"], tg.Health, tg.LastError))
			}
		}
		for job, n := range want {
			if up[job] != n {
				return fmt.Errorf("targets up %v, want %v; not up: %v", up, want, down)
			}
		}
		return nil
	})
	step("monitoring: Prometheus sees every target up in %s: %v", time.Since(ts).Round(time.Millisecond), want)
	e.checkInternals(t, hostPort(e.port, stackfile.ListenPort), hostPort(stackfile.TLSPort, stackfile.TLSPort))

	// Shard 1's Redis gone: the shard alert fires.
	redis := e.redisServices[0]
	ts = time.Now()
	must(t, "service", "scale", "--detach", redis+"=0")
	testenv.Eventually(t, alertBound, func() error {
		var alerts struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		}
		if err := e.prometheusAPI(ctx, "/api/v1/alerts", &alerts); err != nil {
			return err
		}
		var seen []string
		for _, a := range alerts.Alerts {
			if a.Labels["alertname"] == "SurgeShardUnreachable" && a.Labels["shard"] == "1" && a.State == "firing" {
				return nil
			}
			seen = append(seen, a.Labels["alertname"]+"{shard="+a.Labels["shard"]+"} "+a.State)
		}
		return fmt.Errorf("SurgeShardUnreachable is not firing for shard 1; alerts: %v", seen)
	})
	step("monitoring: %s scaled to 0; SurgeShardUnreachable fired for shard 1 after %s (bound %s)", redis, time.Since(ts).Round(time.Millisecond), alertBound)

	ts = time.Now()
	must(t, "service", "scale", "--detach", redis+"=1")
	st, err = readStack(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Redis back, then its frontend (replaced meanwhile by its failing
	// health check) healthy and found by HAProxy.
	bound = st.restartBound(redis) + slow*(st.maxVerdict(redis)+haproxyFind)
	if err := e.settle(t, ctx, "monitoring: "+redis+" back", bound, e.routed); err != nil {
		t.Fatal(err)
	}
	e.checkQueues(t)
	step("monitoring: %s back in %s (bound %s); nothing pending or dead-lettered", redis, time.Since(ts).Round(time.Millisecond), bound)
}

// The monitoring stack the Swarm step deploys (no docker needed): Grafana
// taken out, Prometheus and its configs kept, their files beside it, and
// still a file docker stack deploy reads (docker stack config, which needs
// no engine, when the CLI is here).
func TestMonitoringStackWithoutGrafana(t *testing.T) {
	opt := stackfile.Defaults()
	opt.TLS, opt.Monitoring = true, true
	file := writeMonitoringStack(t, opt, "docker-stack.monitoring.yml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image   string `yaml:"image"`
			Configs []struct{ Source string }
		} `yaml:"services"`
		Secrets map[string]any                   `yaml:"secrets"`
		Configs map[string]struct{ File string } `yaml:"configs"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc.Services["grafana"]; ok || doc.Secrets[stackfile.GrafanaPasswordSecret] != nil {
		t.Fatal("Grafana is still in the stack")
	}
	prom, ok := doc.Services["prometheus"]
	if !ok || prom.Image != stackfile.PrometheusImageVar || len(prom.Configs) != 2 {
		t.Fatalf("prometheus: %+v", prom)
	}
	for _, c := range prom.Configs {
		cfg, ok := doc.Configs[c.Source]
		if !ok {
			t.Fatalf("config %s is not declared", c.Source)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(file), cfg.File)); err != nil {
			t.Errorf("config %s: %v", c.Source, err)
		}
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return
	}
	cmd := exec.Command("docker", "stack", "config", "-c", file)
	cmd.Dir = filepath.Dir(file)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "prometheus") {
		t.Fatalf("docker stack config: %v\n%s", err, out)
	}
}
