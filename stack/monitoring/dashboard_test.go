package monitoring

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// dashboard is the part of Grafana's dashboard JSON the test checks.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
}

type panel struct {
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// load reads the file at path into a T with unmarshal (JSON or YAML).
func load[T any](t *testing.T, path string, unmarshal func([]byte, any) error) T {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func readDashboard(t *testing.T) dashboard {
	return load[dashboard](t, "grafana/dashboards/surge.json", json.Unmarshal)
}

// rulesFile is the part of rules.yml the test reads.
type rulesFile struct {
	Groups []struct {
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) rulesFile { return load[rulesFile](t, "rules.yml", yaml.Unmarshal) }

// The dashboard is one Grafana loads, and every panel shows something: a
// title, the provisioned datasource, and at least one query.
func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || len(d.Panels) == 0 {
		t.Fatalf("dashboard uid %q title %q schemaVersion %d with %d panels", d.UID, d.Title, d.SchemaVersion, len(d.Panels))
	}
	prov := load[struct {
		Datasources []struct{ UID, Type string } `yaml:"datasources"`
	}](t, "grafana/provisioning/datasources/prometheus.yml", yaml.Unmarshal)
	if len(prov.Datasources) != 1 {
		t.Fatalf("datasource provisioning has %d datasources, want 1", len(prov.Datasources))
	}
	want := `{"type":"prometheus","uid":"` + prov.Datasources[0].UID + `"}`
	for i, p := range d.Panels {
		if p.Title == "" {
			t.Errorf("panel %d has no title", i)
		}
		if got := compact(t, p.Datasource); got != want {
			t.Errorf("panel %q: datasource %s, want the provisioned one %s", p.Title, got, want)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" || q.RefID == "" {
				t.Errorf("panel %q: query %q with refId %q", p.Title, q.Expr, q.RefID)
			}
		}
	}
}

func compact(t *testing.T, raw json.RawMessage) string {
	var v struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Errorf("datasource %s: %v", raw, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

var (
	// A metric name in PromQL: surge's own, or Prometheus's "up". A
	// recorded series (level:metric:operations) has colons and is matched
	// apart. Names are never quoted, so label values do not match.
	metricName   = regexp.MustCompile(`\b(surge_[a-z0-9_]+|up)\b`)
	recordedName = regexp.MustCompile(`\bsurge:[a-z0-9_:]+`)
	quoted       = regexp.MustCompile(`"[^"]*"`)
)

// Every metric the rules and the dashboard query is one a service exports,
// and every recorded series they use is one the rules record: a renamed
// metric fails here, not on the event day with an empty panel.
func TestQueriesUseExportedMetrics(t *testing.T) {
	exported := exportedNames(t)
	rules := readRules(t)
	recorded := map[string]bool{}
	var queries []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			queries = append(queries, r.Expr)
		}
	}
	for _, p := range readDashboard(t).Panels {
		for _, q := range p.Targets {
			queries = append(queries, q.Expr)
		}
	}
	used := 0
	for _, q := range queries {
		q = quoted.ReplaceAllString(q, `""`)
		for _, name := range metricName.FindAllString(q, -1) {
			used++
			if !exported[name] {
				t.Errorf("%s in %q is exported by no service", name, q)
			}
		}
		for _, name := range recordedName.FindAllString(q, -1) {
			if !recorded[name] {
				t.Errorf("%s in %q is recorded by no rule in rules.yml", name, q)
			}
		}
	}
	if used == 0 {
		t.Fatal("no metric name found in any query: the pattern is broken")
	}
}

// exportedNames returns every series name the services export: web (on a
// real Redis), result (on a real Postgres) and the worker (each service's own registry, behind
// the engine every service uses), as Prometheus scrapes them. Histograms
// and summaries export _bucket, _sum and _count. "up" is Prometheus's own.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	r := testenv.Redis(t)

	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.Node, cfg.CookieKeys = r.Addr, "web-1", []string{"test-cookie-key-0123456789"}
	web, err := capture.New(context.Background(), cfg, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(web.Close)

	// result exports the stock of items that exist.
	db := testenv.Postgres(t)
	price := surge.Cents(100)
	if _, _, err := db.UpsertItem(context.Background(), surge.ItemInput{Name: "sneaker", Quantity: 5, Price: &price}); err != nil {
		t.Fatal(err)
	}
	res := results.New("result-1", db, redis.Shards{}, results.NewLive(db, log, time.Second), log)

	q := &redis.Consumer{Client: redis.NewClient(redis.Config{Addr: r.Addr}, 2), Stream: redis.DefaultStream, Group: "workers", Name: "w1"}
	t.Cleanup(func() { q.Client.Close() })
	if err := q.EnsureGroup(context.Background()); err != nil {
		t.Fatal(err)
	}
	reg, metrics := drain.NewRegistry([]drain.BacklogReader{q})
	drain.NewShard(q, nil, drain.Options{Shard: "1", Metrics: metrics})
	worker, err := httpx.NewEngine(httpx.EngineOptions{Service: "worker", Node: "w1", Log: log, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}

	names := map[string]bool{"up": true}
	for _, svc := range []struct {
		name string
		h    http.Handler
		// requests whose metrics exist only once such a request was served
		requests []*http.Request
	}{
		{"web", web.Handler(), []*http.Request{
			jsonPost("/vote", `{"choice":"cats"}`), jsonPost("/orders", `{"item":1,"quantity":1}`)}},
		{"result", res.Handler(), nil},
		{"worker", worker, nil},
	} {
		ts := httptest.NewServer(svc.h)
		t.Cleanup(ts.Close)
		for _, req := range svc.requests {
			req.URL.Scheme, req.URL.Host = "http", strings.TrimPrefix(ts.URL, "http://")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("%s %s %s: %d, want 202", svc.name, req.Method, req.URL.Path, resp.StatusCode)
			}
		}
		// The first scrape makes the request metrics exist; the second shows them.
		scrape(t, ts.URL)
		for _, n := range scrape(t, ts.URL) {
			names[n] = true
		}
	}
	return names
}

func jsonPost(path, body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.RequestURI = ""
	req.Header.Set("Content-Type", "application/json")
	return req
}

// scrape reads url's /metrics and returns the series names it exports.
func scrape(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(string(body)) {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names = append(names, f[2])
		switch f[3] {
		case "histogram":
			names = append(names, f[2]+"_bucket", f[2]+"_sum", f[2]+"_count")
		case "summary":
			names = append(names, f[2]+"_sum", f[2]+"_count")
		}
	}
	if !slices.Contains(names, "surge_build_info") {
		t.Fatalf("%s/metrics has no surge_build_info:\n%s", url, body)
	}
	return names
}
