package e2e

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Postgres is stopped under load: capture keeps answering 202 (votes wait
// in the streams), workers back off, and once Postgres is back the results
// catch up exactly.
func TestPostgresOutageKeepsCaptureUp(t *testing.T) {
	c := up(t, 2, 2)
	client := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var acked, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				_, status := vote(t, client(), c.URL, []string{"cats", "dogs"}[(g+i)%2])
				if status == http.StatusAccepted {
					acked.Add(1)
				} else {
					failed.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	if err := c.Postgres.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	down := acked.Load()
	time.Sleep(5 * time.Second)
	during := acked.Load() - down
	if err := c.RestartPostgres(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d votes not acknowledged; capture must not depend on Postgres", failed.Load())
	}
	if during < 100 {
		t.Fatalf("only %d votes acknowledged during the outage", during)
	}
	start := time.Now()
	waitDrained(t, c)
	var res struct{ Total int64 }
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(c.URL + "/results/api/polls/cats-vs-dogs")
		if err == nil {
			decodeJSON(resp, &res)
			if res.Total == acked.Load() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("results show %d votes, want %d (every voter voted once)", res.Total, acked.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d votes acknowledged, %d of them while Postgres was down; caught up %s after it returned",
		acked.Load(), during, time.Since(start).Round(time.Millisecond))
}
