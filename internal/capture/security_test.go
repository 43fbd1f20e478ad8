package capture_test

import (
	"net/http"
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
