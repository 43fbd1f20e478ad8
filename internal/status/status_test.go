package status_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/status"
	"github.com/surge-vote/surge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func addr(ts *httptest.Server) string { return strings.TrimPrefix(ts.URL, "http://") }

// status reads a running pipeline (a frontend on a real Redis, a real
// worker and result on a real Postgres; admin not answering) from its
// services' /healthz and /metrics: the shard with its backlog, each
// service's health, Postgres up, the votes captured. When the shard's Redis
// dies, it says the shard is unreadable and the frontend down.
func TestStatusOfARunningPipeline(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := testenv.Redis(t)
	pgURL := testenv.PostgresURL(t)

	wcfg := drain.DefaultConfig()
	port, err := launcher.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	wcfg.Name, wcfg.Listen, wcfg.Shards, wcfg.Postgres.URL = "worker-1", fmt.Sprintf("127.0.0.1:%d", port), []string{r.Addr}, pgURL
	workerDone := make(chan error, 1)
	go func() { workerDone <- drain.RunWorker(ctx, wcfg, log, nil) }()
	defer func() { cancel(); <-workerDone }()

	ccfg := capture.DefaultConfig()
	ccfg.Redis.Addr, ccfg.Node, ccfg.CookieKeys = r.Addr, "web-1", []string{"test-cookie-key-0123456789"}
	web, err := capture.New(ctx, ccfg, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(web.Close)
	webTS := httptest.NewServer(web.Handler())
	t.Cleanup(webTS.Close)

	db := testenv.PostgresClient(t, pgURL)
	live := results.NewLive(db, log, 10*time.Millisecond)
	go live.Run(ctx, db)
	resultTS := httptest.NewServer(results.New("result-1", db, redis.Shards{}, live, log).Handler())
	t.Cleanup(resultTS.Close)

	gone, err := launcher.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	targets := status.Targets{Web: []string{addr(webTS)}, Workers: []string{wcfg.Listen}, Result: []string{addr(resultTS)},
		Admin: []string{fmt.Sprintf("127.0.0.1:%d", gone)}}

	req, _ := http.NewRequest(http.MethodPost, webTS.URL+"/vote", strings.NewReader(`{"choice":"cats"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("vote: %d", resp.StatusCode)
	}

	var rep status.Report
	testenv.Eventually(t, 30*time.Second, func() error {
		rep = status.Gather(ctx, http.DefaultClient, targets, 3*time.Second)
		if len(rep.Shards) != 1 || !rep.Shards[0].Readable || rep.Shards[0].Applied != 1 {
			return fmt.Errorf("shards %+v: want shard 1 readable, its vote applied", rep.Shards)
		}
		for _, s := range rep.Services[:3] {
			if s.Health != "ok" {
				return fmt.Errorf("%s: %s", s.Kind, s.Health)
			}
		}
		return nil
	})
	if rep.Postgres != "up" || rep.Votes != 1 || rep.Shards[0].Shard != "1" || rep.Shards[0].Pending != 0 || rep.Shards[0].Lag != 0 {
		t.Fatalf("report %+v: want postgres up, 1 vote, shard 1 drained", rep)
	}
	nodes := []string{}
	for _, s := range rep.Services {
		nodes = append(nodes, s.Kind+"="+s.Node+":"+s.Health)
	}
	if want := []string{"web=web-1:ok", "worker=worker-1:ok", "result=result-1:ok", "admin=:no answer"}; !slices.Equal(nodes, want) {
		t.Fatalf("services %v, want %v", nodes, want)
	}
	if p := rep.Problems(); len(p) != 1 || !strings.Contains(p[0], "admin") {
		t.Fatalf("problems %q, want admin's alone", p)
	}
	var out bytes.Buffer
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for line := range strings.Lines(out.String()) {
		rows = append(rows, strings.Join(strings.Fields(line), " "))
	}
	for _, want := range []string{"1 yes 0 0 0s 1", "web " + addr(webTS) + " web-1 ok", "admin " + targets.Admin[0] + " - no answer",
		"postgres - - up", "NOT HEALTHY:", "admin at " + targets.Admin[0] + ": no answer"} {
		if !slices.Contains(rows, want) {
			t.Errorf("output lacks the row %q:\n%s", want, out.String())
		}
	}
	if lines := strings.Count(out.String(), "\n"); lines > 24 {
		t.Errorf("%d lines: not one screen\n%s", lines, out.String())
	}

	// The shard's Redis dies.
	r.Kill()
	testenv.Eventually(t, 30*time.Second, func() error {
		rep = status.Gather(ctx, http.DefaultClient, targets, 3*time.Second)
		if len(rep.Shards) != 1 || rep.Shards[0].Readable {
			return fmt.Errorf("shards %+v: want shard 1 unreadable", rep.Shards)
		}
		if rep.Services[0].Health != "unavailable" || !strings.Contains(rep.Services[0].Failing, "redis") {
			return fmt.Errorf("web: %+v, want unavailable, failing redis", rep.Services[0])
		}
		return nil
	})
	if p := rep.Problems(); !slices.ContainsFunc(p, func(s string) bool { return s == "shard 1 cannot be read by any worker" }) {
		t.Fatalf("problems %q lack the shard", p)
	}
}
