package capture_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// A vote is refused at capture outside its poll's window (409, nothing
// queued); inside it, the entry carries the capture time the worker judges
// it by. The vote page says when the poll opens or that it closed.
func TestPollWindowAtCapture(t *testing.T) {
	r := testenv.Redis(t)
	opens := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	closes := opens.Add(time.Hour)
	url, clk := frozenFrontend(t, r, func(c *capture.Config) {
		c.Polls = append(c.Polls, surge.Poll{ID: "final", Title: "Final?", Options: []string{"yes", "no"}, OpensAt: &opens, ClosesAt: &closes})
	})
	rc := goredis.NewClient(&goredis.Options{Addr: r.Addr})
	t.Cleanup(func() { rc.Close() })
	for _, step := range []struct {
		at     time.Time
		status int
		error  string // the JSON error, for a refusal
		page   string // what the vote page says
	}{
		{opens.Add(-time.Second), 409, "poll not open yet", "This poll opens"},
		{opens, 202, "", "Voting closes at"},
		{closes.Add(-time.Millisecond), 202, "", "Voting closes at"},
		{closes, 409, "poll closed", "This poll closed"},
		{closes.Add(24 * time.Hour), 409, "poll closed", "This poll closed"},
	} {
		clk.Set(step.at)
		before := len(entries(t, rc))
		resp := post(t, url+"/vote", "application/json", `{"poll":"final","choice":"yes"}`)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != step.status {
			t.Fatalf("vote at %v: %d %s, want %d", step.at, resp.StatusCode, body, step.status)
		}
		queued := entries(t, rc)[before:]
		if step.status != 202 {
			var e struct{ Error string }
			if json.Unmarshal(body, &e); e.Error != step.error {
				t.Fatalf("vote at %v: error %q, want %q", step.at, e.Error, step.error)
			}
			if len(queued) != 0 || voterCookie(resp) != nil {
				t.Fatalf("vote at %v refused, yet queued %v (cookie %v)", step.at, queued, voterCookie(resp))
			}
		} else if len(queued) != 1 || !queued[0].At.Equal(step.at) {
			t.Fatalf("vote at %v: queued %+v, want one entry cast at that time", step.at, queued)
		}
		page, err := http.Get(url + "/polls/final")
		if err != nil {
			t.Fatal(err)
		}
		html, _ := io.ReadAll(page.Body)
		page.Body.Close()
		if !strings.Contains(string(html), step.page) {
			t.Fatalf("vote page at %v does not say %q:\n%s", step.at, step.page, html)
		}
		if open := strings.Contains(string(html), `name="choice"`); open != (step.status == 202) {
			t.Fatalf("vote page at %v: buttons shown = %v, want %v", step.at, open, step.status == 202)
		}
	}
}
