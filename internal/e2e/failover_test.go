package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/testenv"
)

// A web instance whose Redis is down fails its health check, HAProxy stops
// sending it votes, and it never answers 202 meanwhile. When its Redis
// comes back on the same AOF, HAProxy sends it votes again.
func TestHAProxyRoutesAroundAShardWhoseRedisIsDown(t *testing.T) {
	c := up(t, 2, 1)
	client := &http.Client{Timeout: 5 * time.Second}
	send := func() (string, int) { return vote(t, client, c.URL, "cats") }

	c.Redis[0].Kill()
	// While HAProxy notices (fall 2 × inter 1s), web-1 answers 503: never 202.
	deadline := time.Now().Add(15 * time.Second)
	streak := 0
	for streak < 20 {
		if time.Now().After(deadline) {
			t.Fatal("HAProxy kept routing to the shard whose Redis is down")
		}
		node, status := send()
		switch {
		case status == http.StatusAccepted && node == "web-1":
			t.Fatal("web-1 acknowledged a vote with its Redis down")
		case status == http.StatusAccepted:
			streak++
		case status == http.StatusServiceUnavailable:
			streak = 0
		default:
			t.Fatalf("unexpected status %d", status)
		}
	}

	// Bring the shard back on the same port and AOF.
	r := testenv.RestartRedis(t, c.Redis[0])
	c.Redis[0] = r
	deadline = time.Now().Add(15 * time.Second)
	for {
		if node, status := send(); status == http.StatusAccepted && node == "web-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("web-1 did not come back after its Redis restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
