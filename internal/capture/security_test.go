package capture_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/testenv"
)

// One voter flooding is slowed down (429) while another voter passes.
func TestVoterFloodIsLimited(t *testing.T) {
	ts := newServer(t, testenv.Redis(t), func(c *capture.Config) { c.VoterRate, c.VoterBurst = 1, 10 })
	flooder := voterCookie(post(t, ts.URL+"/vote", "application/json", `{"choice":"cats"}`))
	other := voterCookie(post(t, ts.URL+"/vote", "application/json", `{"choice":"dogs"}`))
	limited := 0
	for range 30 {
		resp := post(t, ts.URL+"/vote", "application/json", `{"choice":"cats"}`, flooder)
		switch resp.StatusCode {
		case http.StatusAccepted:
		case http.StatusTooManyRequests:
			limited++
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if limited < 15 {
		t.Fatalf("only %d of 30 flood votes limited", limited)
	}
	if resp := post(t, ts.URL+"/vote", "application/json", `{"choice":"cats"}`, other); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("another voter got %d during the flood", resp.StatusCode)
	}
}

// After repeated failed logins a client is locked out, even with the right
// password; other clients are not. The password never reaches the logs.
func TestAdminLockoutAndNoCredentialsInLogs(t *testing.T) {
	url := testenv.PostgresURL(t)
	logs := &testenv.LogBuffer{}
	cfg := adminConfig(url)
	cfg.AdminMaxFails = 5
	ts := serve(t, startServer(t, cfg, capture.Options{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))

	get := func(client, password string) int {
		req, _ := http.NewRequest("GET", ts.URL+"/admin/api/items", nil)
		req.Header.Set("X-Forwarded-For", client) // from a trusted proxy (loopback)
		req.SetBasicAuth("admin", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get("203.0.113.1", adminPassword); s != 200 {
		t.Fatalf("right password: %d", s)
	}
	for i := range 5 {
		if s := get("203.0.113.1", "guess-"+string(rune('a'+i))); s != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, s)
		}
	}
	if s := get("203.0.113.1", adminPassword); s != http.StatusTooManyRequests {
		t.Fatalf("after 5 failures the right password got %d, want 429 (locked out)", s)
	}
	if s := get("203.0.113.2", adminPassword); s != 200 {
		t.Fatalf("another client got %d", s)
	}
	if strings.Contains(logs.String(), adminPassword) || strings.Contains(logs.String(), "guess-") {
		t.Fatalf("credentials in the logs:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "admin login failed") {
		t.Fatal("failed logins are not logged at all")
	}
}
