package capture_test

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

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

// clock is a test clock that moves only when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// A limited voter is told when its next vote will be taken: Retry-After is
// the limiter's real wait, in whole seconds rounded up.
func TestVoterLimitRetryAfterIsTheRealWait(t *testing.T) {
	clk := newClock()
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.Node, cfg.CookieKeys = testenv.Redis(t).Addr, "node-a", []string{testKey}
	cfg.VoterRate, cfg.VoterBurst = 0.1, 1 // a vote every 10 s
	ts := serve(t, startServer(t, cfg, capture.Options{Now: clk.Now}))
	vote := func(ck *http.Cookie) (*http.Response, *http.Cookie) {
		t.Helper()
		var cookies []*http.Cookie
		if ck != nil {
			cookies = append(cookies, ck)
		}
		resp := post(t, ts.URL+"/vote", "application/json", `{"choice":"cats"}`, cookies...)
		if next := voterCookie(resp); next != nil {
			return resp, next
		}
		return resp, ck
	}
	_, ck := vote(nil)   // a new voter: not limited
	resp, ck := vote(ck) // takes the one token
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first vote with a cookie: %d", resp.StatusCode)
	}
	for _, step := range []struct {
		advance time.Duration
		status  int
		retry   string
	}{
		{0, http.StatusTooManyRequests, "10"},
		{3500 * time.Millisecond, http.StatusTooManyRequests, "7"}, // 6.5 s left
		{6 * time.Second, http.StatusTooManyRequests, "1"},         // 0.5 s left
		{500 * time.Millisecond, http.StatusAccepted, ""},
	} {
		clk.Advance(step.advance)
		resp, ck = vote(ck)
		if resp.StatusCode != step.status || resp.Header.Get("Retry-After") != step.retry {
			t.Fatalf("after %v more: %d with Retry-After %q; want %d with %q",
				step.advance, resp.StatusCode, resp.Header.Get("Retry-After"), step.status, step.retry)
		}
	}
}

// After repeated failed logins a client is locked out, even with the right
// password, and told how long the lockout has left; other clients are not.
// The password never reaches the logs.
func TestAdminLockoutAndNoCredentialsInLogs(t *testing.T) {
	url := testenv.PostgresURL(t)
	logs := &testenv.LogBuffer{}
	cfg := adminConfig(url)
	cfg.AdminMaxFails, cfg.AdminLockout = 5, time.Minute
	clk := newClock()
	ts := serve(t, startServer(t, cfg, capture.Options{Now: clk.Now,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))

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
