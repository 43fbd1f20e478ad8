package admin_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/admin"
)

// A poll's state follows admin's clock: scheduled before it opens, open,
// closed from its closing time or from an early close.
func TestPollStatesOnAFakeStore(t *testing.T) {
	store := &fakeStore{}
	var now atomic.Int64 // the server reads it; the test moves it
	now.Store(time.Date(2027, 2, 7, 21, 0, 0, 0, time.UTC).Unix())
	cfg := admin.DefaultConfig()
	cfg.AdminPassword, cfg.AdminMaxFails = adminPassword, 100
	ts := serveAdmin(t, cfg, admin.Options{Store: store, Now: func() time.Time { return time.Unix(now.Load(), 0) }})
	for _, body := range []string{
		`{"id":"later","options":["a","b"],"opens_at":"2027-02-07T22:00:00Z"}`,
		`{"id":"now","options":["a","b"],"closes_at":"2027-02-07T23:00:00+01:00"}`, // 22:00 UTC
		`{"id":"early","options":["a","b"]}`,
	} {
		if resp, out := adminDo(t, ts, "POST", "/admin/api/polls", "application/json", body, true); resp.StatusCode != 201 {
			t.Fatalf("create %s: %d %v", body, resp.StatusCode, out)
		}
	}
	resp, out := adminDo(t, ts, "POST", "/admin/api/polls/early/close", "", "", true)
	if resp.StatusCode != 200 || out["state"] != "closed" || out["closes_at"] != "2027-02-07T21:00:00Z" {
		t.Fatalf("close early: %d %v, want 200 closed at 21:00", resp.StatusCode, out)
	}
	states := func() map[string]string {
		got := map[string]string{}
		for _, p := range listPolls(t, ts.URL) {
			got[p.ID] = p.State
		}
		return got
	}
	want := map[string]string{"later": "scheduled", "now": "open", "early": "closed"}
	if got := states(); !maps.Equal(got, want) {
		t.Fatalf("at 21:00: states %v, want %v", got, want)
	}
	now.Add(3600) // 22:00: "later" opens as "now" closes
	want = map[string]string{"later": "open", "now": "closed", "early": "closed"}
	if got := states(); !maps.Equal(got, want) {
		t.Fatalf("at 22:00: states %v, want %v", got, want)
	}
}

// "accounts_only" is taken from JSON and from the admin form, and listed.
func TestAccountsOnlyPoll(t *testing.T) {
	store := &fakeStore{}
	cfg := admin.DefaultConfig()
	cfg.AdminPassword, cfg.AdminMaxFails = adminPassword, 100
	ts := serveAdmin(t, cfg, admin.Options{Store: store})
	for _, c := range []struct{ ct, body string }{
		{"application/json", `{"id":"members","options":["a","b"],"accounts_only":true}`},
		{"application/x-www-form-urlencoded", "id=staff&options=a,b&accounts_only=1"},
		{"application/json", `{"id":"open-to-all","options":["a","b"]}`},
	} {
		if resp, out := adminDo(t, ts, "POST", "/admin/api/polls", c.ct, c.body, true); resp.StatusCode != 201 {
			t.Fatalf("create %s: %d %v", c.body, resp.StatusCode, out)
		}
	}
	got := map[string]bool{}
	for _, p := range listPolls(t, ts.URL) {
		got[p.ID] = p.AccountsOnly
	}
	if want := map[string]bool{"members": true, "staff": true, "open-to-all": false}; !maps.Equal(got, want) {
		t.Fatalf("accounts_only %v, want %v", got, want)
	}
}

// listPolls is GET /admin/api/polls.
func listPolls(t *testing.T, base string) []admin.PollView {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/admin/api/polls", nil)
	asAdmin(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var polls []admin.PollView
	if err := json.NewDecoder(resp.Body).Decode(&polls); err != nil {
		t.Fatal(err)
	}
	return polls
}
