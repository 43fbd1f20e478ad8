// Package stackfile renders docker-stack.yml, surge's Docker Swarm stack, for
// N capture shards and M workers. The committed docker-stack.yml is Render's
// output for the defaults (a test compares them), so change the stack here.
//
// The stack's design, as the comments in the rendered file also explain:
//   - shard k is web-k and redis-k, pinned to nodes labelled surge.shard.k=true;
//     redis-k sits on the internal network shard-k; web-k writes every entry
//     to two shards' Redis (package copies), its own and the next one up, so
//     it is on every shard's network and knows every shard (SURGE_SHARDS,
//     SURGE_SHARD=k);
//   - admin and result (2 replicas each), the workers (every one reads every
//     shard) and postgres (pinned to surge.postgres=true) sit on internal
//     networks; HAProxy, on every node, is the only published port;
//   - every service is dnsrr: HAProxy and the services find tasks through
//     Docker's DNS, so neither IPVS nor the ingress routing mesh is used;
//   - with TLS, HAProxy also publishes HTTPS with the certificate of a Swarm
//     secret, and redirects HTTP to it;
//   - with monitoring, Prometheus scrapes every task of web, admin, result
//     and the workers over the internal network db (Swarm DNS,
//     tasks.<service>), and Grafana shows the provisioned dashboard, on an
//     internal network of their own; Grafana's port is published only when
//     asked.
package stackfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/surge-vote/surge/stack/deploy"
	"github.com/surge-vote/surge/stack/monitoring"
)

// Options size the stack.
type Options struct {
	Shards         int // capture shards: web-k + redis-k each
	Workers        int // worker replicas
	WebReplicas    int // frontends per shard
	AdminReplicas  int
	ResultReplicas int
	// TLS ends TLS at HAProxy with the certificate and key in the Swarm
	// secret TLSSecret, publishes HTTPS too and redirects HTTP to it. It is
	// a variant: the committed docker-stack.yml is without it, because
	// HAProxy cannot start without the certificate it names.
	TLS bool
	// Monitoring adds Prometheus and Grafana, with the rules and the
	// dashboard of stack/monitoring; Grafana's admin password is the Swarm
	// secret GrafanaPasswordSecret.
	Monitoring bool
	// PublishGrafana publishes Grafana's port (GRAFANA_PORT, default 3000)
	// in host mode on the node that runs it (with Monitoring).
	PublishGrafana bool
}

// Defaults are the committed docker-stack.yml's sizes.
func Defaults() Options {
	return Options{Shards: 3, Workers: 2, WebReplicas: 1, AdminReplicas: 2, ResultReplicas: 2}
}

// Stack-wide names, shared with the tests and the documentation.
const (
	ImageVar         = "${SURGE_IMAGE:-surge}:${SURGE_TAG:-latest}"
	RedisImageVar    = "${REDIS_IMAGE:-redis:7}"
	PostgresImageVar = "${POSTGRES_IMAGE:-postgres:16}"
	HAProxyImageVar  = "${HAPROXY_IMAGE:-haproxy:2.8}"
	// With Options.Monitoring: the official images.
	PrometheusImageVar = "${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.0}"
	GrafanaImageVar    = "${GRAFANA_IMAGE:-grafana/grafana:11.1.0}"

	PostgresPasswordSecret = "surge_postgres_password"
	CookieKeysSecret       = "surge_cookie_keys"
	AdminPasswordSecret    = "surge_admin_password"
	TLSSecret              = "surge_tls"              // certificate chain and key, one PEM (with Options.TLS)
	GrafanaPasswordSecret  = "surge_grafana_password" // Grafana's admin password (with Options.Monitoring)

	ShardLabel    = "surge.shard" // node label surge.shard.<k>=true
	PostgresLabel = "surge.postgres"
	ListenPort    = 8080 // every surge service, and HAProxy, inside its container
	TLSPort       = 8443 // HAProxy's HTTPS inside its container (with Options.TLS)
	PromPort      = 9090 // Prometheus, inside its container (with Options.Monitoring)
	GrafanaPort   = 3000 // Grafana, inside its container (with Options.Monitoring)
	WebAlias      = "web"
	WebSlots      = 64 // server-template slots for web tasks in haproxy.cfg
	// HAProxy's defaults for open connections per client address, and
	// live-result streams per result task (HTTP_CONN_PER_IP,
	// HTTP_STREAMS_PER_RESULT); the same as `stack run`'s.
	ConnPerIP        = 500
	StreamsPerResult = 1000

	postgresURL = "postgres://surge@postgres:5432/surge?sslmode=disable"
	slotName    = "{{.Service.Name}}-{{.Task.Slot}}" // a Swarm template: stable per slot
)

// ShardNodeLabel is the node label that places shard k: surge.shard.<k>.
func ShardNodeLabel(k int) string { return fmt.Sprintf("%s.%d", ShardLabel, k) }

// HAProxyConfigName is the Swarm config's name: it carries a hash of
// haproxy.cfg because a Swarm config cannot be changed in place.
func HAProxyConfigName() string {
	sum := sha256.Sum256(deploy.HAProxyConfig)
	return "surge_haproxy_" + hex.EncodeToString(sum[:])[:10]
}

// swarmConfig is a Swarm config: a file from the repository mounted into a
// service. Its name carries a hash of the content because a Swarm config
// cannot be changed in place.
type swarmConfig struct {
	Key, Name, File, Target string
}

func newConfig(key, file string, content []byte, target string) swarmConfig {
	sum := sha256.Sum256(content)
	return swarmConfig{Key: key, Name: "surge_" + key + "_" + hex.EncodeToString(sum[:])[:10], File: file, Target: target}
}

// monitoringConfigs are the files Prometheus and Grafana mount, from
// stack/monitoring.
func monitoringConfigs() (prometheus, grafana []swarmConfig) {
	m := func(key, file, target string) swarmConfig {
		return newConfig(key, "./"+monitoring.Dir+"/"+file, monitoring.File(file), target)
	}
	prometheus = []swarmConfig{
		m("prometheus", monitoring.PrometheusConfig, "/etc/prometheus/prometheus.yml"),
		m("prometheus_rules", monitoring.Rules, "/etc/prometheus/rules.yml"),
	}
	grafana = []swarmConfig{
		m("grafana_datasource", monitoring.GrafanaDatasource, "/etc/grafana/provisioning/datasources/prometheus.yml"),
		m("grafana_provider", monitoring.GrafanaProvider, "/etc/grafana/provisioning/dashboards/surge.yml"),
		m("grafana_dashboard", monitoring.GrafanaDashboard, "/var/lib/grafana/dashboards/surge/surge.json"),
	}
	return prometheus, grafana
}

type kv struct{ Key, Value string }

// port is a port published in host mode: Published is a stack variable.
type port struct {
	Target    int
	Published string
}

type network struct {
	Name    string
	Aliases []string
	Comment string
}

type health struct {
	Test                     []string
	Interval, Timeout, Start string
	Retries                  int
}

type deployment struct {
	Global      bool
	Replicas    int
	Comment     string // above placement/update_config
	Constraint  string
	Order       string // start-first or stop-first
	OrderNote   string
	Delay       string
	Monitor     string
	Rollback    bool // max_failure_ratio 0: one failed task rolls back
	Restart     string
	Window      string
	CPUs, Mem   string // limits
	RCPUs, RMem string // reservations
}

type service struct {
	Name, Comment string
	Image         string
	Command       []string
	CommandNote   string
	Hostname      bool
	Env           []kv
	Secrets       []string
	Networks      []network
	Volumes       []string
	Health        health
	StopGrace     string
	StopNote      string
	Deploy        deployment
	Ports         []port
	Configs       []swarmConfig
}

// Every health check's timeout and retries. Swarm kills and replaces a task
// whose check fails retries times in a row, and a probe runs through docker
// exec, which alone can take several seconds on a loaded 2-core node (at a
// load average of 30 to 50, probes timed out at 2 s and at 5 s, several in
// a row): a check that flaps under load kills healthy tasks, mid-update too
// (see rollOrder), and a store killed that way must recover again. 10 s per
// probe, above /healthcheck's own 3 s, and 10 failures in a row: a task is
// replaced after about two minutes stuck, or 20 s of refusals (a dependency
// down: a store restarts within that on an idle node). HAProxy's own checks
// (every second, fall 2) take a server out of rotation long before.
const (
	healthTimeout = "10s"
	healthRetries = 10
)

// ourHealth probes /healthz with the image's static probe, every 2 s: a
// new task is found healthy, and listed in Docker's DNS, soon after it
// starts.
func ourHealth(start string) health {
	return health{Test: []string{"CMD", "/healthcheck"}, Interval: "2s", Timeout: healthTimeout, Retries: healthRetries, Start: start}
}

// rollOrder is the update order of a stateless service with that many
// replicas. With two or more, stop-first: the others serve meanwhile. It
// also avoids a Swarm race (moby/swarmkit#2242): in a start-first update,
// an old task that fails before the updater has replaced it is restarted
// with the new spec by the restart policy, the updater starts its own new
// task too, and the slot keeps two running tasks once the update
// completes. A single replica stays start-first, or each update would be
// an outage.
func rollOrder(replicas int) (order, note string) {
	if replicas > 1 {
		return "stop-first", "stop-first: the other replicas serve meanwhile, and a start-first update can\nleave a slot with two tasks when an old one fails mid-update\n(moby/swarmkit#2242)."
	}
	return "start-first", ""
}

func stateless(replicas int, cpus, mem string) deployment {
	order, note := rollOrder(replicas)
	return deployment{Replicas: replicas, Order: order, OrderNote: note, Delay: "5s", Monitor: "10s", Restart: "2s", Window: "30s",
		CPUs: cpus, Mem: mem, RCPUs: "0.05", RMem: "32M"}
}

func stateful(constraint, cpus, mem, rcpus, rmem string) deployment {
	return deployment{Replicas: 1, Constraint: constraint, Order: "stop-first", Monitor: "15s", Restart: "2s",
		CPUs: cpus, Mem: mem, RCPUs: rcpus, RMem: rmem}
}

// webShardNets are the shards' networks as a frontend joins them: all of
// them, since it writes each entry's copies to two shards.
func webShardNets(names []string) []network {
	n := make([]network, len(names))
	for i, name := range names {
		n[i] = network{Name: name}
	}
	if len(n) > 1 {
		n[0].Comment = "Every shard's: each entry goes to this shard's Redis and the next one up."
	}
	return n
}

func services(opt Options) []service {
	var shardAddrs, shardNets []string
	for k := 1; k <= opt.Shards; k++ {
		shardAddrs = append(shardAddrs, fmt.Sprintf("redis-%d:6379", k))
		shardNets = append(shardNets, fmt.Sprintf("shard-%d", k))
	}
	pgEnv := func(conns int) []kv {
		return []kv{{"SURGE_POSTGRES_URL", postgresURL}, {"SURGE_POSTGRES_PASSWORD_FILE", "/run/secrets/" + PostgresPasswordSecret},
			{"SURGE_POSTGRES_MAX_CONNS", fmt.Sprint(conns)}}
	}
	polls := kv{"SURGE_POLLS", "${SURGE_POLLS:-}"}
	listen := kv{"SURGE_LISTEN", fmt.Sprintf(":%d", ListenPort)}
	nets := func(names ...string) []network {
		var n []network
		for _, name := range names {
			n = append(n, network{Name: name})
		}
		return n
	}

	hap := service{Name: "haproxy", Image: HAProxyImageVar, Networks: nets("edge"),
		Configs: []swarmConfig{{Key: "haproxy", Name: HAProxyConfigName(), File: "./" + deploy.HAProxyConfigPath, Target: "/usr/local/etc/haproxy/haproxy.cfg"}},
		Ports:   []port{{ListenPort, "${HTTP_PORT:-80}"}},
		Env: []kv{{"RATE_PER_IP", "${HTTP_RATE_PER_IP:-0}"}, {"CONN_PER_IP", fmt.Sprintf("${HTTP_CONN_PER_IP:-%d}", ConnPerIP)},
			{"STREAMS_PER_RESULT", fmt.Sprintf("${HTTP_STREAMS_PER_RESULT:-%d}", StreamsPerResult)}},
		Health: health{Test: []string{"CMD", "bash", "-c",
			`exec 3<>/dev/tcp/127.0.0.1/8404 && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && grep -q '^HTTP/1.[01] 200' <&3`},
			Interval: "5s", Timeout: healthTimeout, Retries: healthRetries, Start: "10s"},
		StopGrace: "10s",
		Deploy: deployment{Global: true, Comment: "One per node, each bound to the node's port: an outside load balancer\n(or DNS) can use any node, as with the routing mesh.",
			Order: "stop-first", OrderNote: "Stateless, but two tasks cannot share a node's port: stop-first.",
			Delay: "5s", Monitor: "15s", Restart: "2s", Window: "30s", CPUs: "1", Mem: "256M", RCPUs: "0.1", RMem: "32M"}}
	if opt.TLS {
		// haproxy.cfg binds HTTPS only when TLS_CRT is set.
		hap.Ports = append(hap.Ports, port{TLSPort, "${HTTPS_PORT:-443}"})
		hap.Env = append(hap.Env, kv{"TLS_CRT", "/run/secrets/" + TLSSecret}, kv{"HTTPS_PORT", "${HTTPS_PORT:-443}"})
		hap.Secrets = []string{TLSSecret}
	}
	all := []service{hap}

	for k := 1; k <= opt.Shards; k++ {
		constraint := fmt.Sprintf("node.labels.%s == true", ShardNodeLabel(k))
		web := service{Name: fmt.Sprintf("web-%d", k), Comment: fmt.Sprintf("Shard %d: a stateless frontend and its own durable queue. Each entry is\nwritten to two shards before its 202: this one and the next one up.", k),
			Image: ImageVar, Command: []string{"/web"}, Hostname: true,
			Env: append(append([]kv{listen, {"SURGE_REDIS_ADDR", fmt.Sprintf("redis-%d:6379", k)},
				{"SURGE_SHARDS", strings.Join(shardAddrs, ",")}, {"SURGE_SHARD", fmt.Sprint(k)},
				{"SURGE_COOKIE_KEYS_FILE", "/run/secrets/" + CookieKeysSecret}, {"SURGE_COOKIE_SECURE", "${SURGE_COOKIE_SECURE:-}"},
				{"SURGE_NEW_VOTERS_PER_IP", "${SURGE_NEW_VOTERS_PER_IP:-}"}, {"SURGE_ORDERS_PER_IP", "${SURGE_ORDERS_PER_IP:-}"}},
				pgEnv(4)...), polls),
			Secrets: []string{CookieKeysSecret, PostgresPasswordSecret},
			Networks: append(append([]network{
				{Name: "edge", Aliases: []string{WebAlias}, Comment: "Every shard's frontends answer to tasks." + WebAlias + " for HAProxy."}},
				webShardNets(shardNets)...),
				network{Name: "db", Comment: "The catalogue (polls, items); capture never waits for it."}),
			Health: ourHealth("15s"), StopGrace: "15s", Deploy: stateless(opt.WebReplicas, "2", "256M")}
		web.Deploy.Constraint = constraint
		web.Deploy.Rollback = true
		web.Deploy.Restart, web.Deploy.Window = "1s", "20s"
		if opt.Monitoring {
			db := &web.Networks[len(web.Networks)-1] // the last: after every shard's
			db.Aliases = []string{WebAlias}
			db.Comment += "\nEvery shard's frontends answer to tasks." + WebAlias + " for Prometheus."
		}
		redis := service{Name: fmt.Sprintf("redis-%d", k), Image: RedisImageVar,
			Command: []string{"redis-server", "--appendonly", "yes", "--appendfsync", "always", "--dir", "/data",
				"--protected-mode", "no", "--maxmemory", "768mb", "--maxmemory-policy", "noeviction"},
			CommandNote: "AOF fsynced before every reply: web answers 202 only after it. A memory\ncap with noeviction makes a full queue refuse writes (web answers 503)\nrather than lose entries or be killed.",
			Volumes:     []string{fmt.Sprintf("redis-%d-data:/data", k)}, Networks: nets(fmt.Sprintf("shard-%d", k)),
			Health:    health{Test: []string{"CMD-SHELL", "redis-cli ping | grep -q PONG"}, Interval: "2s", Timeout: healthTimeout, Retries: healthRetries, Start: "30s"},
			StopGrace: "30s", Deploy: stateful(constraint, "1", "1G", "0.1", "128M")}
		redis.Deploy.Restart = "1s"
		all = append(all, web, redis)
	}

	admin := service{Name: "admin", Comment: "The web image in admin mode: polls and items, behind /admin.", Image: ImageVar,
		Command: []string{"/web"}, Hostname: true,
		Env: append(append([]kv{{"SURGE_MODE", "admin"}, listen}, pgEnv(4)...),
			kv{"SURGE_ADMIN_USER", "${SURGE_ADMIN_USER:-admin}"}, kv{"SURGE_ADMIN_PASSWORD_FILE", "/run/secrets/" + AdminPasswordSecret}, polls),
		Secrets: []string{PostgresPasswordSecret, AdminPasswordSecret}, Networks: nets("edge", "db"),
		Health: ourHealth("30s"), StopGrace: "15s", Deploy: stateless(opt.AdminReplicas, "1", "256M")}
	result := service{Name: "result", Comment: "Results, and order status: it reads every shard to tell a pending order\nfrom an unknown one.",
		Image: ImageVar, Command: []string{"/result"}, Hostname: true,
		Env:     append(append([]kv{listen}, pgEnv(8)...), kv{"SURGE_SHARDS", strings.Join(shardAddrs, ",")}, polls),
		Secrets: []string{PostgresPasswordSecret}, Networks: nets(append([]string{"edge", "db"}, shardNets...)...),
		Health: ourHealth("30s"), StopGrace: "15s", Deploy: stateless(opt.ResultReplicas, "1", "256M")}
	worker := service{Name: "worker", Comment: "Every worker drains every shard. Its consumer name is its slot's, so a\ntask that replaces a dead one replays the entries the dead one held.",
		Image: ImageVar, Command: []string{"/worker"}, Hostname: true,
		Env:     append(append([]kv{listen, {"SURGE_NAME", slotName}, {"SURGE_SHARDS", strings.Join(shardAddrs, ",")}}, pgEnv(8)...), polls),
		Secrets: []string{PostgresPasswordSecret}, Networks: nets(append([]string{"db"}, shardNets...)...),
		Health: ourHealth("30s"), StopGrace: "20s", StopNote: "Longer than the worker's finish_timeout (10s): it commits and\nacknowledges the batch it holds before it exits.",
		Deploy: stateless(opt.Workers, "2", "256M")}
	worker.Deploy.Order = "stop-first"
	worker.Deploy.OrderNote = "stop-first: the new task takes over the old one's consumer name, and\ntwo live consumers with one name would both replay its pending entries."
	worker.Deploy.Monitor, worker.Deploy.RCPUs = "15s", "0.1"
	postgres := service{Name: "postgres", Image: PostgresImageVar, Command: []string{"postgres", "-c", "max_connections=200"},
		Env:     []kv{{"POSTGRES_USER", "surge"}, {"POSTGRES_DB", "surge"}, {"POSTGRES_PASSWORD_FILE", "/run/secrets/" + PostgresPasswordSecret}},
		Secrets: []string{PostgresPasswordSecret}, Volumes: []string{"postgres-data:/var/lib/postgresql/data"}, Networks: nets("db"),
		Health:    health{Test: []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-U", "surge", "-d", "surge"}, Interval: "2s", Timeout: healthTimeout, Retries: healthRetries, Start: "60s"},
		StopGrace: "60s", Deploy: stateful(fmt.Sprintf("node.labels.%s == true", PostgresLabel), "2", "2G", "0.25", "256M")}
	all = append(all, admin, result, worker, postgres)
	if opt.Monitoring {
		all = append(all, monitoringServices(opt)...)
	}
	return all
}

// monitoringServices are Prometheus and Grafana (Options.Monitoring).
func monitoringServices(opt Options) []service {
	promConfigs, grafanaConfigs := monitoringConfigs()
	probe := func(url string) health {
		return health{Test: []string{"CMD", "wget", "-q", "-O", "/dev/null", url}, Interval: "5s", Timeout: healthTimeout, Retries: healthRetries, Start: "30s"}
	}
	prom := service{Name: "prometheus", Comment: "Monitoring: Prometheus scrapes every task of web, admin, result and the\nworkers on db, found through Swarm's DNS (stack/monitoring/prometheus.yml),\nand evaluates the alert rules (stack/monitoring/rules.yml).",
		Image: PrometheusImageVar, Configs: promConfigs,
		Command: []string{"--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
			"--storage.tsdb.retention.time=15d", fmt.Sprintf("--web.listen-address=:%d", PromPort)},
		Volumes:  []string{"prometheus-data:/prometheus"},
		Networks: []network{{Name: "db", Comment: "Every surge service is on db: Prometheus reaches each one's own port."}, {Name: "monitoring"}},
		Health:   probe(fmt.Sprintf("http://127.0.0.1:%d/-/healthy", PromPort)), StopGrace: "30s",
		Deploy: stateful("", "1", "1G", "0.1", "128M")}
	grafana := service{Name: "grafana", Comment: "Monitoring: the event-day dashboard, provisioned from stack/monitoring/grafana.",
		Image: GrafanaImageVar, Configs: grafanaConfigs,
		Env: []kv{{"GF_SECURITY_ADMIN_USER", "${GRAFANA_ADMIN_USER:-admin}"}, {"GF_SECURITY_ADMIN_PASSWORD__FILE", "/run/secrets/" + GrafanaPasswordSecret},
			{"GF_USERS_ALLOW_SIGN_UP", "false"}, {"GF_ANALYTICS_REPORTING_ENABLED", "false"}, {"GF_ANALYTICS_CHECK_FOR_UPDATES", "false"},
			{"GF_SERVER_HTTP_PORT", fmt.Sprint(GrafanaPort)}},
		Secrets:  []string{GrafanaPasswordSecret},
		Networks: []network{{Name: "monitoring"}},
		Health:   probe(fmt.Sprintf("http://127.0.0.1:%d/api/health", GrafanaPort)), StopGrace: "15s",
		Deploy: stateless(1, "1", "512M")}
	if opt.PublishGrafana {
		grafana.Ports = []port{{GrafanaPort, fmt.Sprintf("${GRAFANA_PORT:-%d}", GrafanaPort)}}
		grafana.Networks = append([]network{{Name: "edge", Comment: "A published port needs a network with a route out."}}, grafana.Networks...)
	}
	return []service{prom, grafana}
}

// Render returns the stack file.
func Render(opt Options) ([]byte, error) {
	if opt.Shards < 1 || opt.Shards > 64 {
		return nil, fmt.Errorf("shards = %d: want 1 to 64", opt.Shards)
	}
	if opt.Workers < 1 {
		return nil, errors.New("need at least one worker")
	}
	if opt.WebReplicas < 1 || opt.AdminReplicas < 1 || opt.ResultReplicas < 1 {
		return nil, errors.New("web, admin and result need at least one replica each")
	}
	if opt.PublishGrafana && !opt.Monitoring {
		return nil, errors.New("publishing Grafana's port needs --monitoring")
	}
	if opt.Shards*opt.WebReplicas > WebSlots {
		return nil, fmt.Errorf("%d web tasks: haproxy.cfg has %d server slots", opt.Shards*opt.WebReplicas, WebSlots)
	}
	shards := make([]int, opt.Shards)
	for i := range shards {
		shards[i] = i + 1
	}
	secrets := []string{PostgresPasswordSecret, CookieKeysSecret, AdminPasswordSecret}
	if opt.TLS {
		secrets = append(secrets, TLSSecret)
	}
	configs := []swarmConfig{{Key: "haproxy", Name: HAProxyConfigName(), File: "./" + deploy.HAProxyConfigPath}}
	volumes := []string{"postgres-data"}
	for _, k := range shards {
		volumes = append(volumes, fmt.Sprintf("redis-%d-data", k))
	}
	if opt.Monitoring {
		secrets = append(secrets, GrafanaPasswordSecret)
		prom, grafana := monitoringConfigs()
		configs = append(append(configs, prom...), grafana...)
		volumes = append(volumes, "prometheus-data")
	}
	data := map[string]any{
		"O": opt, "Shards": shards, "Services": services(opt), "SlotName": slotName,
		"Configs": configs, "Volumes": volumes,
		"ShardLabel": ShardLabel, "PGLabel": PostgresLabel, "Secrets": secrets,
		"ConnPerIP": ConnPerIP, "StreamsPerResult": StreamsPerResult,
		"PGSecret": PostgresPasswordSecret, "CookieSecret": CookieKeysSecret, "AdminSecret": AdminPasswordSecret, "TLSSecret": TLSSecret,
		"GrafanaSecret": GrafanaPasswordSecret,
	}
	var b bytes.Buffer
	if err := stackTemplate.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render stack: %w", err)
	}
	return b.Bytes(), nil
}

// jsonText is v in JSON, which YAML reads as a flow sequence or a
// double-quoted scalar; <, > and & are left as they are.
func jsonText(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

var funcs = template.FuncMap{
	"flow": func(s []string) string {
		items := make([]string, len(s))
		for i, v := range s {
			items[i] = jsonText(v)
		}
		return "[" + strings.Join(items, ", ") + "]"
	},
	"quote": func(s string) string { return jsonText(s) },
	// comment prefixes every line of s with indent and "# ".
	"comment": func(indent int, s string) string {
		var b strings.Builder
		for _, l := range strings.Split(s, "\n") {
			b.WriteString(strings.Repeat(" ", indent) + "# " + l + "\n")
		}
		return b.String()
	},
}

var stackTemplate = template.Must(template.New("stack").Funcs(funcs).Parse(`# surge on Docker Swarm. Generated by ` + "`" + `go run ./stack render --shards {{.O.Shards}} --workers {{.O.Workers}}{{if .O.TLS}} --tls{{end}}{{if .O.Monitoring}} --monitoring{{end}}{{if .O.PublishGrafana}} --publish-grafana{{end}}` + "`" + `:
# change internal/stackfile and re-render rather than editing this file.
#
# Deploy from the repository root (README, "Deploy"):
#   docker node update --label-add {{.ShardLabel}}.1=true <node>    # and so on, one label per shard
#   docker node update --label-add {{.PGLabel}}=true <node>
#   openssl rand -hex 24 | docker secret create {{.PGSecret}} -
#   openssl rand -hex 32 | docker secret create {{.CookieSecret}} -
#   openssl rand -hex 16 | docker secret create {{.AdminSecret}} -
{{- if .O.TLS}}
#   cat fullchain.pem privkey.pem | docker secret create {{.TLSSecret}} -
{{- end}}
{{- if .O.Monitoring}}
#   openssl rand -hex 16 | docker secret create {{.GrafanaSecret}} -
{{- end}}
#   docker stack deploy -c {{if .O.TLS}}docker-stack.tls.yml{{else}}docker-stack.yml{{end}} surge
#
# Variables (defaults): SURGE_IMAGE (surge) and SURGE_TAG (latest), which
# ` + "`" + `make image` + "`" + ` builds; REDIS_IMAGE (redis:7), POSTGRES_IMAGE (postgres:16),
# HAPROXY_IMAGE (haproxy:2.8); HTTP_PORT (80); HTTP_RATE_PER_IP (requests
# per client address per 10 s before a 429; 0, the default, is no limit);
# HTTP_CONN_PER_IP ({{.ConnPerIP}}: open connections per client address, past which new
# ones are closed; 0 is no cap); HTTP_STREAMS_PER_RESULT ({{.StreamsPerResult}}: live-result
# streams per result task and HAProxy, past which 503);
# SURGE_ADMIN_USER (admin); SURGE_POLLS (the default poll); SURGE_COOKIE_SECURE
# (true when TLS ends in front of HAProxy, at a load balancer);
# SURGE_NEW_VOTERS_PER_IP and SURGE_ORDERS_PER_IP (60 a minute per client
# address and frontend; 0 turns the limit off, as a load test from one
# machine needs).
{{- if .O.TLS}}
# HTTPS_PORT (443): TLS ends at HAProxy with the certificate and key in the
# secret {{.TLSSecret}}; HTTP is redirected to HTTPS, and HTTPS answers carry HSTS.
{{- end}}
{{- if .O.Monitoring}}
# Monitoring: PROMETHEUS_IMAGE (prom/prometheus:v2.53.0), GRAFANA_IMAGE
# (grafana/grafana:11.1.0), GRAFANA_ADMIN_USER (admin; the password is the
# secret {{.GrafanaSecret}}){{if .O.PublishGrafana}}, GRAFANA_PORT (3000, published in host mode on
# Grafana's node){{else}}. Grafana's port is not published: render with
# --publish-grafana to reach it{{end}}.
{{- end}}
#
# Every service is endpoint_mode dnsrr: HAProxy and the services find tasks
# through Docker's DNS, which lists a task once its health check passes, and
# no connection goes through an IPVS virtual IP. HAProxy publishes its port in
# host mode on every node, so clients' addresses reach it unchanged.
version: "3.8"

services:
{{- range $i, $s := .Services}}
{{if $i}}
{{end}}
{{- if .Comment}}{{comment 2 .Comment}}{{end -}}
{{"  "}}{{.Name}}:
    image: {{.Image}}
{{- if .Ports}}
    ports:
{{- range .Ports}}
      - target: {{.Target}}
        published: {{.Published}}
        protocol: tcp
        mode: host
{{- end}}
{{- end}}
{{- if .Configs}}
    configs:
{{- range .Configs}}
      - source: {{.Key}}
        target: {{.Target}}
{{- end}}
{{- end}}
{{- if .Command}}
{{- if .CommandNote}}
{{comment 4 .CommandNote}}{{else}}
{{end}}    command: {{flow .Command}}
{{- end}}
{{- if .Hostname}}
    hostname: {{quote $.SlotName}}
{{- end}}
{{- if .Env}}
    environment:
{{- range .Env}}
      {{.Key}}: {{quote .Value}}
{{- end}}
{{- end}}
{{- if .Secrets}}
    secrets:
{{- range .Secrets}}
      - {{.}}
{{- end}}
{{- end}}
{{- if .Volumes}}
    volumes:
{{- range .Volumes}}
      - {{.}}
{{- end}}
{{- end}}
    networks:
{{- range .Networks}}
{{- if .Comment}}
{{comment 6 .Comment}}{{else}}
{{end}}      {{.Name}}:
{{- if .Aliases}}
        aliases:
{{- range .Aliases}}
          - {{.}}
{{- end}}
{{- else}} {}
{{- end}}
{{- end}}
    healthcheck:
      test: {{flow .Health.Test}}
      interval: {{.Health.Interval}}
      timeout: {{.Health.Timeout}}
      retries: {{.Health.Retries}}
      start_period: {{.Health.Start}}
{{- if .StopNote}}
{{comment 4 .StopNote}}{{else}}
{{end}}    stop_grace_period: {{.StopGrace}}
    deploy:
{{- with .Deploy}}
{{- if .Global}}
{{- if .Comment}}
{{comment 6 .Comment}}{{else}}
{{end}}      mode: global
{{- else}}
      replicas: {{.Replicas}}
{{- end}}
      endpoint_mode: dnsrr
{{- if .Constraint}}
      placement:
        constraints:
          - {{.Constraint}}
{{- end}}
{{- if .OrderNote}}
{{comment 6 .OrderNote}}{{else}}
{{end}}      update_config:
        parallelism: 1
{{- if .Delay}}
        delay: {{.Delay}}
{{- end}}
        order: {{.Order}}
        failure_action: rollback
        monitor: {{.Monitor}}
{{- if .Rollback}}
        max_failure_ratio: 0
{{- end}}
      rollback_config:
        parallelism: 1
        order: {{.Order}}
      restart_policy:
        condition: any
        delay: {{.Restart}}
{{- if .Window}}
        window: {{.Window}}
{{- end}}
      resources:
        limits:
          cpus: {{quote .CPUs}}
          memory: {{.Mem}}
        reservations:
          cpus: {{quote .RCPUs}}
          memory: {{.RMem}}
{{- end}}
{{- end}}

networks:
  # HAProxy and the HTTP services.
  edge:
    driver: overlay
  # Postgres: the workers, result, admin and the frontends' catalogue. No
  # route outside.
  db:
    driver: overlay
    internal: true
{{- range .Shards}}
  # Shard {{.}}'s queue: web-{{.}}, the workers and result.
  shard-{{.}}:
    driver: overlay
    internal: true
{{- end}}
{{- if .O.Monitoring}}
  # Prometheus and Grafana.
  monitoring:
    driver: overlay
    internal: true
{{- end}}

volumes:
{{- range .Volumes}}
  {{.}}: {}
{{- end}}

secrets:
{{- range .Secrets}}
  {{.}}:
    external: true
{{- end}}

configs:
{{- range .Configs}}
  {{.Key}}:
    name: {{.Name}}
    file: {{.File}}
{{- end}}
`))
