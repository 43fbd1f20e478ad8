package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/testenv"
)

// A poll's life through HAProxy: created with a closing time, voted in,
// closed early by admin while the only worker is down, so the votes
// captured before the close are drained after it. Those count; every vote
// after the close is refused at capture on every frontend, and the export
// says final once the shards are drained.
func TestPollLifecycle(t *testing.T) {
	c := up(t, 2, 1)
	closes := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	status, _ := adminPost(t, c, "/admin/api/polls", map[string]any{"id": "final", "title": "Final?", "options": []string{"yes", "no"}, "closes_at": closes})
	if status != 201 {
		t.Fatalf("create poll: %d", status)
	}
	castVote := func(client *http.Client, choice string) (int, string) {
		resp, err := client.Post(c.URL+"/vote", "application/json", strings.NewReader(`{"poll":"final","choice":"`+choice+`"}`))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	newVoter := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: testenv.RequestBound}
	}
	// Every frontend knows the poll once its NOTIFY arrived. Each voter
	// votes once, so each 202 is one more vote that must count.
	yes := 0
	testenv.Eventually(t, resultsLag, func() error {
		for range 2 * len(c.Web) {
			status, body := castVote(newVoter(), "yes")
			if status != 202 {
				return fmt.Errorf("vote before the close: %d %s", status, body)
			}
			yes++
		}
		return nil
	})
	// The worker stops: what is captured now is drained only after the close.
	c.Workers[0].Kill()
	<-c.Workers[0].Done()
	late := 0
	for range 20 {
		if status, body := castVote(newVoter(), "no"); status != 202 {
			t.Fatalf("vote before the close, worker down: %d %s", status, body)
		}
		late++
	}
	req, _ := http.NewRequest("POST", c.URL+"/admin/api/polls/final/close", nil)
	req.SetBasicAuth(c.AdminUser, c.AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("close the poll: %v %v", resp, err)
	}
	resp.Body.Close()
	// Every frontend refuses once it heard of the close; none acknowledges after.
	testenv.Eventually(t, resultsLag, func() error {
		for range 2 * len(c.Web) {
			if status, body := castVote(newVoter(), "no"); status != 409 || !strings.Contains(body, `"poll closed"`) {
				return fmt.Errorf("vote after the close: %d %s", status, body)
			}
		}
		return nil
	})
	if err := c.Restart(t.Context(), c.Workers[0]); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, c)
	tl := export(t, c, "final")
	if tl.State != "closed" || !tl.Final || tl.Counts["no"] != int64(late) || tl.Counts["yes"] != int64(yes) {
		t.Fatalf("export after the drain: %+v; want closed, final, yes = %d, no = %d (captured before the close, drained after)", tl, yes, late)
	}
}

func export(t *testing.T, c *launcher.Cluster, poll string) results.Tally {
	t.Helper()
	resp, err := http.Get(c.URL + "/results/api/polls/" + poll + "/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tl results.Tally
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&tl); resp.StatusCode != 200 || err != nil {
		t.Fatalf("export %s: %d %s", poll, resp.StatusCode, b)
	}
	return tl
}
