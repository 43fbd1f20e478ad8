package results_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
	"github.com/surge-vote/surge/internal/voter"
)

// serve starts a result service whose hub pushes at most once per interval,
// and waits until it hears of commits.
func serve(t *testing.T, db *postgres.DB, queued redis.Shards, interval time.Duration) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	live := results.NewLive(db, log, interval)
	go live.Run(ctx, db)
	ts := httptest.NewServer(results.New("r1", db, queued, live, log).Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(cancel) // streams end before the server closes
	testenv.Eventually(t, 10*time.Second, func() error {
		if !live.Listening() {
			return errors.New("result does not listen for commits yet")
		}
		return nil
	})
	return ts
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	status, body := get(t, url)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, status, body)
	}
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// Votes go through the real pipeline (two frontends, each on its own Redis,
// and two workers per shard committing small batches), while result pushes
// at most once an hour: its cache is certain to lag the commits. The first
// time the backlog says drained, the results read right after must count
// every acknowledged vote, at or past the backlog's watermark.
func TestResultsAreCompleteOnceDrained(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	if err := db.EnsurePolls(ctx, surge.DefaultPolls()); err != nil {
		t.Fatal(err)
	}
	shards := redis.Shards{Stream: redis.DefaultStream, Group: "workers"}
	var fronts []string
	for i := range 2 {
		r := testenv.Redis(t)
		cfg := capture.DefaultConfig()
		cfg.Redis.Addr, cfg.Node, cfg.CookieKeys = r.Addr, fmt.Sprintf("web-%d", i+1), []string{"shared-key-0123456789abcdef"}
		cfg.NewVotersPerIP = 0 // hundreds of new voters, all from 127.0.0.1
		s, err := capture.New(ctx, cfg, capture.Options{})
		if err != nil {
			t.Fatal(err)
		}
		front := httptest.NewServer(s.Handler())
		t.Cleanup(func() { front.Close(); s.Close() })
		fronts = append(fronts, front.URL)

		client := redis.NewClient(redis.Config{Addr: r.Addr}, 4)
		t.Cleanup(func() { client.Close() })
		shards.Clients = append(shards.Clients, client)
		for w := range 2 {
			q := &redis.Consumer{Client: client, Stream: shards.Stream, Group: shards.Group, Name: fmt.Sprintf("w%d", w)}
			runWorker(t, q, db)
		}
	}
	ts := serve(t, db, shards, time.Hour)

	// Each voter votes on one frontend; every third cat voter changes their
	// mind on the other, with the cookie of the first 202.
	const voters = 1200
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	vote := func(front, choice string, ck *http.Cookie) (*http.Cookie, error) {
		req, _ := http.NewRequest("POST", front+"/vote", strings.NewReader(`{"choice":"`+choice+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if ck != nil {
			req.AddCookie(ck)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return nil, fmt.Errorf("vote %s: %s", choice, resp.Status)
		}
		for _, c := range resp.Cookies() {
			if c.Name == voter.CookieName {
				return c, nil
			}
		}
		return nil, errors.New("no voter cookie")
	}
	final := make([]string, voters)
	errs := make(chan error, voters)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range next {
				choice := []string{"cats", "dogs"}[i%2]
				ck, err := vote(fronts[i%2], choice, nil)
				if err == nil && i%6 == 0 {
					choice = "dogs"
					_, err = vote(fronts[(i+1)%2], choice, ck)
				}
				if err != nil {
					errs <- err
					continue
				}
				final[i] = choice
			}
		})
	}
	start := time.Now()
	for i := range voters {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, c := range final {
		want[c]++
	}
	t.Logf("%d voters acknowledged in %s", voters, time.Since(start).Round(time.Millisecond))

	// The answers are decoded as a client would, into its own types.
	type backlogAnswer struct {
		Drained bool             `json:"drained"`
		Seq     map[string]int64 `json:"seq"`
	}
	var backlog backlogAnswer
	testenv.Eventually(t, time.Minute, func() error {
		backlog = backlogAnswer{}
		getJSON(t, ts.URL+"/results/api/backlog", &backlog)
		if !backlog.Drained {
			return fmt.Errorf("not drained: %+v", backlog)
		}
		return nil
	})
	var got resultsAnswer
	getJSON(t, ts.URL+"/results/api/polls/"+surge.DefaultPollID, &got)
	if got.Counts["cats"] != want["cats"] || got.Counts["dogs"] != want["dogs"] || got.Total != voters {
		t.Fatalf("right after drained: results %+v, want %v (total %d)", got, want, voters)
	}
	if mark := backlog.Seq[surge.DefaultPollID]; mark == 0 || got.Seq < mark {
		t.Fatalf("results at commit %d, backlog's watermark %d", got.Seq, mark)
	}
	t.Logf("drained at commit %d of %s: %v, exact", backlog.Seq[surge.DefaultPollID], surge.DefaultPollID, want)
}

// resultsAnswer is one poll's results, as a client reads them.
type resultsAnswer struct {
	Counts    map[string]int64 `json:"counts"`
	Total     int64            `json:"total"`
	Seq       int64            `json:"seq"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// runWorker drains a shard until the test ends.
func runWorker(t *testing.T, q *redis.Consumer, db *postgres.DB) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		drain.NewShard(q, db, drain.Options{BatchSize: 50, Block: 50 * time.Millisecond}).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// updated_at is when a commit last changed the counts, whenever they are
// read: a result service started after the commit shows the commit's time
// in the JSON, on the page and in the stream, and the next commit moves it.
func TestUpdatedAtIsTheCommitTime(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	if err := db.EnsurePolls(ctx, surge.DefaultPolls()); err != nil {
		t.Fatal(err)
	}
	commit := func(id, voter, choice string) (from, to time.Time) {
		from = time.Now().Truncate(time.Microsecond)
		if _, err := db.ApplyVotes(ctx, []surge.Vote{{ID: id, Poll: surge.DefaultPollID, Choice: choice, Voter: voter, Version: 1}}); err != nil {
			t.Fatal(err)
		}
		return from, time.Now()
	}
	within := func(what string, at, from, to time.Time) {
		t.Helper()
		if at.Before(from) || at.After(to) {
			t.Errorf("%s: updated_at %v, want the commit's time, between %v and %v", what, at, from, to)
		}
	}
	from, to := commit("e1", "a", "cats")

	// Read later, by a result service that was not running at the commit.
	ts := serve(t, db, redis.Shards{}, time.Millisecond)
	var res resultsAnswer
	getJSON(t, ts.URL+"/results/api/polls/"+surge.DefaultPollID, &res)
	within("JSON", res.UpdatedAt, from, to)
	var all []resultsAnswer
	getJSON(t, ts.URL+"/results/api/polls", &all)
	if len(all) != 1 || !all[0].UpdatedAt.Equal(res.UpdatedAt) {
		t.Errorf("all polls: %+v, want updated_at %v", all, res.UpdatedAt)
	}
	_, page := get(t, ts.URL+"/results")
	m := regexp.MustCompile(`<time class="updated" datetime="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the page shows no time of the last update")
	}
	shown, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatal(err)
	}
	within("page", shown, from.Truncate(time.Millisecond), to) // shown to the millisecond
	within("stream", firstEvent(t, ts.URL).UpdatedAt, from, to)

	// A new commit moves it, once result has heard of it.
	from, to = commit("e2", "b", "dogs")
	testenv.Eventually(t, 10*time.Second, func() error {
		getJSON(t, ts.URL+"/results/api/polls/"+surge.DefaultPollID, &res)
		if res.Total != 2 {
			return fmt.Errorf("results %+v, want the second vote", res)
		}
		return nil
	})
	within("JSON after a second commit", res.UpdatedAt, from, to)
	within("stream after a second commit", firstEvent(t, ts.URL).UpdatedAt, from, to)
}

// firstEvent reads the first results event of a new stream.
func firstEvent(t *testing.T, base string) resultsAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/results/api/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var snap resultsAnswer
			if err := json.Unmarshal([]byte(data), &snap); err != nil {
				t.Fatal(err)
			}
			return snap
		}
	}
	t.Fatalf("stream ended without an event: %v", sc.Err())
	return resultsAnswer{}
}
