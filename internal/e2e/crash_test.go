package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
)

// Workers that SIGKILL themselves between commit and XACK (the fault hook,
// on only here) are restarted over and over while 1,000 voters vote twice.
// Every vote still counts exactly once.
func TestWorkersCrashingBetweenCommitAndAck(t *testing.T) {
	c := up(t, 2, 2, func(o *launcher.Options) {
		o.WorkerEnv = append(o.WorkerEnv, "SURGE_TEST_CRASH_AFTER_COMMIT=0.25", "SURGE_BATCH_SIZE=50")
	})
	ctx, cancel := context.WithCancel(context.Background())
	var crashes atomic.Int64
	var wg sync.WaitGroup
	for _, w := range c.Workers {
		wg.Go(func() { // a supervisor, as Swarm's restart policy would be
			for {
				select {
				case <-ctx.Done():
					return
				case <-w.Done():
				}
				if ctx.Err() != nil {
					return
				}
				crashes.Add(1)
				// Again and again, like Swarm: a new process may crash again
				// before it is seen listening.
				time.Sleep(100 * time.Millisecond)
				c.Restart(ctx, w)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	const voters = 1000
	final := make([]string, voters)
	jars := make([]http.CookieJar, voters)
	transport := &http.Transport{MaxIdleConnsPerHost: 32}
	var next atomic.Int64
	var send sync.WaitGroup
	for range 16 {
		send.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= voters {
					return
				}
				jars[i], _ = cookiejar.New(nil)
				client := &http.Client{Jar: jars[i], Transport: transport, Timeout: 10 * time.Second}
				for _, choice := range []string{"cats", "dogs", "cats"}[i%2:][:2] {
					if _, status := vote(t, client, c.URL, choice); status != http.StatusAccepted {
						t.Errorf("vote: %d", status)
						return
					}
					final[i] = choice
				}
			}
		})
	}
	send.Wait()
	waitDrained(t, c)
	if crashes.Load() == 0 {
		t.Fatal("no worker crashed: the test proves nothing")
	}
	counted := map[string]string{}
	for _, r := range auditVotes(t, c) {
		counted[r.Voter] = r.Choice
	}
	u, _ := url.Parse(c.URL)
	want := map[string]int64{}
	for i := range voters {
		id := voterID(jars[i].Cookies(u))
		if counted[id] != final[i] {
			t.Fatalf("voter %d: counted %q, want %q", i, counted[id], final[i])
		}
		want[final[i]]++
	}
	waitResults(t, c, want)
	t.Logf("%d worker crashes between commit and ack; %s counted exactly", crashes.Load(), strings.TrimSpace(fmt.Sprint(want)))
}
