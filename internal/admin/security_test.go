package admin_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/admin"
	"github.com/surge-vote/surge/internal/testenv"
)

// After repeated failed logins a client is locked out, even with the right
// password, and told how long the lockout has left; other clients are not.
// The password never reaches the logs.
func TestAdminLockoutAndNoCredentialsInLogs(t *testing.T) {
	url := testenv.PostgresURL(t)
	logs := &testenv.LogBuffer{}
	cfg := adminConfig(url)
	cfg.AdminMaxFails, cfg.AdminLockout = 5, time.Minute
	clk := testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ts := serveAdmin(t, cfg, admin.Options{Now: clk.Now,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	get := func(client, password string) (int, string) {
		return adminGet(t, ts.URL, password, client) // from a trusted proxy (loopback)
	}
	if s, _ := get("203.0.113.1", adminPassword); s != 200 {
		t.Fatalf("right password: %d", s)
	}
	start := clk.Now()
	for i := range 5 {
		if s, _ := get("203.0.113.1", "guess-"+string(rune('a'+i))); s != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, s)
		}
		clk.Advance(time.Second) // the failures are at 0, 1, 2, 3 and 4 s
	}
	// The lockout ends when the first failure leaves the minute: at 60 s.
	for _, step := range []struct {
		at    time.Duration // since the first failure
		retry string
	}{{5 * time.Second, "55"}, {20500 * time.Millisecond, "40"}, {59900 * time.Millisecond, "1"}} {
		clk.Advance(start.Add(step.at).Sub(clk.Now()))
		if s, retry := get("203.0.113.1", adminPassword); s != http.StatusTooManyRequests || retry != step.retry {
			t.Fatalf("%v after the first failure the right password got %d with Retry-After %q, want 429 (locked out) with %q",
				step.at, s, retry, step.retry)
		}
	}
	clk.Advance(100 * time.Millisecond)
	if s, _ := get("203.0.113.1", adminPassword); s != 200 {
		t.Fatalf("a minute after the first failure the right password got %d, want 200", s)
	}
	if s, _ := get("203.0.113.2", adminPassword); s != 200 {
		t.Fatalf("another client got %d", s)
	}
	if strings.Contains(logs.String(), adminPassword) || strings.Contains(logs.String(), "guess-") {
		t.Fatalf("credentials in the logs:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "admin login failed") {
		t.Fatal("failed logins are not logged at all")
	}
}
