// Package e2e drives the whole pipeline, started by the same launcher as
// `make run`, over HTTP through HAProxy.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
	"github.com/surge-vote/surge/internal/voter"
)

var binDir string

func TestMain(m *testing.M) {
	if !testingShort() {
		dir, err := testenv.BuildBinaries()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binDir = dir
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func testingShort() bool {
	for _, a := range os.Args {
		if a == "-test.short=true" || a == "-test.short" {
			return true
		}
	}
	return false
}

func up(t *testing.T, shards, workers int, options ...func(*launcher.Options)) *launcher.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end (skipped in -short)")
	}
	dir, err := os.MkdirTemp("", "surge-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opt := launcher.Options{
		Dir: dir, BinDir: binDir, Shards: shards, Workers: workers,
		// Reclaim a dead worker's entries quickly.
		WorkerEnv: []string{"SURGE_CLAIM_IDLE=" + claimIdle.String(), "SURGE_CLAIM_EVERY=250ms", "SURGE_TRIM_EVERY=500ms", "SURGE_BATCH_SIZE=200"},
		// Thousands of voters and buyers, all from one address (loopback).
		WebEnv: []string{"SURGE_NEW_VOTERS_PER_IP=0", "SURGE_ORDERS_PER_IP=0"},
	}
	for _, o := range options {
		o(&opt)
	}
	c, err := launcher.Up(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("state and logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return c
}

type voterClient struct {
	http   *http.Client
	final  string
	first  string // node that took the first vote
	accept int
}

func vote(t *testing.T, client *http.Client, base, choice string) (node string, status int) {
	req, _ := http.NewRequest("POST", base+"/vote", strings.NewReader(`{"poll":"cats-vs-dogs","choice":"`+choice+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	var rec struct{ Node, Choice string }
	json.NewDecoder(resp.Body).Decode(&rec)
	return rec.Node, resp.StatusCode
}

// 2,000 voters vote through HAProxy; half of them then change their vote on
// the other frontend (the other shard). A worker is SIGKILLed halfway. Once
// the queues drain, the results equal exactly what was acknowledged.
func TestEveryAcknowledgedVoteCountedExactlyOnce(t *testing.T) {
	c := up(t, 2, 2)
	const voters = 2000
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	nodeAddr := map[string]string{}
	for i, w := range c.Web {
		nodeAddr[fmt.Sprintf("web-%d", i+1)] = "http://" + w.Addr
	}

	vs := make([]*voterClient, voters)
	for i := range vs {
		jar, _ := cookiejar.New(nil)
		vs[i] = &voterClient{http: &http.Client{Jar: jar, Transport: transport, Timeout: 10 * time.Second}}
	}
	var done atomic.Int64
	half, killed := make(chan struct{}), make(chan struct{})
	var stranded int64
	go func() {
		defer close(killed)
		<-half
		// SIGKILL worker-1 mid-run, at a moment it holds unacknowledged
		// entries: it does whenever a batch is in hand, so within a read's
		// block time and a batch's commit. If it holds none by then, it is
		// killed anyway; the log says what it held.
		testenv.WaitFor(context.Background(), batchBound, func() error {
			if stranded = pendingOf(c, "worker-1"); stranded == 0 {
				return errors.New("worker-1 holds no entries")
			}
			return nil
		})
		c.Workers[0].Kill()
		stranded = pendingOf(c, "worker-1")
	}()

	work := func(f func(i int)) {
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range 32 {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= voters {
						return
					}
					f(i)
				}
			})
		}
		wg.Wait()
	}
	var failures atomic.Int64
	work(func(i int) {
		v := vs[i]
		choice := []string{"cats", "dogs"}[rand.IntN(2)]
		node, status := vote(t, v.http, c.URL, choice)
		if status != http.StatusAccepted {
			failures.Add(1)
			return
		}
		v.first, v.final = node, choice
		if done.Add(1) == voters/2 {
			close(half)
		}
	})
	// Half of the voters change their vote, on the other frontend.
	work(func(i int) {
		v := vs[i]
		if i%2 == 1 || v.final == "" {
			return
		}
		var other string
		for node, addr := range nodeAddr {
			if node != v.first {
				other = addr
			}
		}
		choice := map[string]string{"cats": "dogs", "dogs": "cats"}[v.final]
		node, status := vote(t, v.http, other, choice)
		if status != http.StatusAccepted {
			failures.Add(1)
			return
		}
		if node == v.first {
			t.Errorf("change vote landed on the same node %s", node)
		}
		v.final = choice
		done.Add(1)
	})
	<-killed
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d votes were not acknowledged", n)
	}

	want := map[string]int64{"cats": 0, "dogs": 0}
	for _, v := range vs {
		want[v.final]++
	}
	waitDrained(t, c)
	waitResults(t, c, want)
	t.Logf("counted exactly: %v from %d voters, %d acknowledged votes; worker-1 killed holding %d unacknowledged entries",
		want, voters, done.Load(), stranded)

	// Per voter: the vote that counts is the last one acknowledged.
	counted := map[string]string{}
	for _, r := range auditVotes(t, c) {
		counted[r.Voter] = r.Choice
	}
	u, _ := url.Parse(c.URL)
	for i, v := range vs {
		id := voterID(v.http.Jar.Cookies(u))
		if id == "" || counted[id] != v.final {
			t.Fatalf("voter %d (%s): counted %q, last acknowledged %q", i, id, counted[id], v.final)
		}
	}
	if len(counted) != voters {
		t.Fatalf("%d voters counted, want %d", len(counted), voters)
	}

	// Every service exports Prometheus metrics.
	for _, m := range []struct{ addr, metric string }{
		{c.Web[0].Addr, "surge_votes_captured_total"}, {c.Web[1].Addr, "surge_capture_pipeline_size"},
		{c.Workers[1].Addr, "surge_worker_entries_applied_total"}, {c.Result.Addr, "surge_http_requests_total"},
		{c.Admin.Addr, "go_goroutines"},
	} {
		resp, err := http.Get("http://" + m.addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), m.metric) {
			t.Errorf("%s/metrics: %d, lacks %s", m.addr, resp.StatusCode, m.metric)
		}
	}

	// Graceful shutdown: every service exits 0 on SIGTERM.
	for _, s := range append(append([]*launcher.Service{c.Result, c.Admin}, c.Web...), c.Workers[1]) {
		if err := s.Stop(15 * time.Second); err != nil {
			t.Errorf("%s on SIGTERM: %v", s.Name, err)
		}
	}
}

func decodeJSON(resp *http.Response, out any) {
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(out)
}

// waitResults waits until the results API shows exactly want. Results are
// pushed at most once per push interval after a commit, so a read right
// after the drain may be up to resultsLag old; then they must match exactly.
func waitResults(t *testing.T, c *launcher.Cluster, want map[string]int64) {
	t.Helper()
	var total int64
	for _, n := range want {
		total += n
	}
	testenv.Eventually(t, resultsLag, func() error {
		resp, err := http.Get(c.URL + "/results/api/polls/cats-vs-dogs")
		if err != nil {
			return err
		}
		var got surge.Results
		decodeJSON(resp, &got)
		if got.Total != total || got.Counts["cats"] != want["cats"] || got.Counts["dogs"] != want["dogs"] {
			return fmt.Errorf("results %+v, want %v (total %d)", got, want, total)
		}
		return nil
	})
}

// voterID reads the voter id out of the (signed, not encrypted) cookie.
func voterID(cookies []*http.Cookie) string {
	for _, c := range cookies {
		if c.Name == voter.CookieName {
			if parts := strings.Split(c.Value, "."); len(parts) == 4 {
				return parts[1]
			}
		}
	}
	return ""
}

func auditVotes(t *testing.T, c *launcher.Cluster) []postgres.VoteRecord {
	t.Helper()
	req, _ := http.NewRequest("GET", c.URL+"/admin/api/audit/votes?poll=cats-vs-dogs", nil)
	req.SetBasicAuth(c.AdminUser, c.AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("audit votes: %v %v", resp, err)
	}
	defer resp.Body.Close()
	var out []postgres.VoteRecord
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// pendingOf counts the entries delivered to consumer and not acknowledged.
func pendingOf(c *launcher.Cluster, consumer string) int64 {
	var n int64
	for _, r := range c.Redis {
		client := redis.NewClient(redis.Config{Addr: r.Addr}, 1)
		p, err := client.XPendingExt(context.Background(), &goredis.XPendingExtArgs{
			Stream: redis.DefaultStream, Group: "workers", Consumer: consumer, Start: "-", End: "+", Count: 10000,
		}).Result()
		if err == nil {
			n += int64(len(p))
		}
		client.Close()
	}
	return n
}

// backlog is the result service's view of the queues.
type backlog struct {
	Drained bool
	Shards  []redis.ShardBacklog
}

func readBacklog(c *launcher.Cluster) (backlog, error) {
	var b backlog
	resp, err := http.Get(c.URL + "/results/api/backlog")
	if err != nil {
		return b, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("backlog: %s", resp.Status)
	}
	return b, json.NewDecoder(resp.Body).Decode(&b)
}

// waitDrained waits until the result service reports every shard drained,
// within drainBound of the backlog it finds first.
func waitDrained(t *testing.T, c *launcher.Cluster) {
	t.Helper()
	var entries int64
	if b, err := readBacklog(c); err == nil {
		for _, s := range b.Shards {
			entries += s.Pending + s.Lag
		}
	}
	start := time.Now()
	testenv.Eventually(t, drainBound(entries), func() error {
		b, err := readBacklog(c)
		if err != nil {
			return err
		}
		if !b.Drained || len(b.Shards) != len(c.Redis) {
			return fmt.Errorf("queues not drained: %+v", b)
		}
		return nil
	})
	t.Logf("drained %d entries in %s", entries, time.Since(start).Round(time.Millisecond))
}

// Bounds on what the tests wait for (see also testenv's).
const (
	// claimIdle is SURGE_CLAIM_IDLE in up: a dead worker's entries wait
	// that long before another worker claims them.
	claimIdle = 2 * time.Second
	// drainFloor is the fewest entries a second the workers drain, even
	// while they crash between commit and XACK over and over (the crash
	// test: 1,747 entries in 15.3 s, 114/s, with other tests loading the
	// machine; thousands a second otherwise).
	drainFloor = 50
	// batchBound: a worker's read blocks up to its block time (1 s), then
	// commits a batch of up to 200 entries.
	batchBound = time.Second + 200*time.Second/drainFloor
)

// resultsLag: a commit reaches the results API within a push interval, and
// a read of Postgres (which times out after 5 s; a failed read is tried
// again at the next push).
var resultsLag = 2 * (results.DefaultConfig().PushInterval + 5*time.Second)

// drainBound bounds the time to drain a backlog of n entries: a dead
// worker's entries wait claimIdle, a restarting one needs to start, and the
// entries drain at drainFloor at least.
func drainBound(n int64) time.Duration {
	return claimIdle + testenv.ProcStart + time.Duration(n)*time.Second/drainFloor
}
