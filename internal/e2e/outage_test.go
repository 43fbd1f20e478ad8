package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/testenv"
)

// Postgres is stopped under load: capture keeps answering 202 (votes wait
// in the streams), workers back off, and once Postgres is back the results
// catch up exactly.
func TestPostgresOutageKeepsCaptureUp(t *testing.T) {
	c := up(t, 2, 2)
	var acked, failed, sent atomic.Int64
	load := testenv.StartLoad(8, func() {
		jar, _ := cookiejar.New(nil) // every vote a new voter
		client := &http.Client{Jar: jar, Timeout: testenv.RequestBound}
		_, status := vote(t, client, c.URL, []string{"cats", "dogs"}[sent.Add(1)%2])
		if status == http.StatusAccepted {
			acked.Add(1)
		} else {
			failed.Add(1)
		}
	})
	defer load.Stop()
	// n more votes acknowledged than now.
	more := func(n int64) func() error {
		want := acked.Load() + n
		return func() error {
			if got := acked.Load(); got < want {
				return fmt.Errorf("%d votes acknowledged, want %d (%d failed)", got, want, failed.Load())
			}
			return nil
		}
	}
	testenv.Eventually(t, testenv.AnswersBound(100), more(100))
	if err := c.Postgres.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	down := acked.Load()
	// Capture goes on while Postgres is down.
	testenv.Eventually(t, testenv.AnswersBound(300), more(300))
	during := acked.Load() - down
	ctx, cancel := context.WithTimeout(context.Background(), testenv.PostgresStart)
	defer cancel()
	if err := c.RestartPostgres(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, testenv.AnswersBound(100), more(100))
	load.Stop()
	if failed.Load() != 0 {
		t.Fatalf("%d votes not acknowledged; capture must not depend on Postgres", failed.Load())
	}
	stopped := time.Now()
	waitDrained(t, c)
	testenv.Eventually(t, resultsLag, func() error {
		resp, err := http.Get(c.URL + "/results/api/polls/cats-vs-dogs")
		if err != nil {
			return err
		}
		var res struct{ Total int64 }
		decodeJSON(resp, &res)
		if res.Total != acked.Load() {
			return fmt.Errorf("results show %d votes, want %d (every voter voted once)", res.Total, acked.Load())
		}
		return nil
	})
	t.Logf("%d votes acknowledged, %d of them while Postgres was down; results exact %s after the load stopped",
		acked.Load(), during, time.Since(stopped).Round(time.Millisecond))
}
