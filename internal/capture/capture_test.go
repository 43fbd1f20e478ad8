package capture_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
	"github.com/surge-vote/surge/internal/voter"
)

const testKey = "test-cookie-key-0123456789"

func newServer(t *testing.T, r *launcher.Redis, mutate ...func(*capture.Config)) *httptest.Server {
	t.Helper()
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr = r.Addr
	cfg.Node = "node-a"
	cfg.CookieKeys = []string{testKey}
	for _, m := range mutate {
		m(&cfg)
	}
	return serve(t, startServer(t, cfg, capture.Options{}))
}

// startServer builds a capture server (web or admin) that the test closes.
func startServer(tb testing.TB, cfg capture.Config, opt capture.Options) *capture.Server {
	tb.Helper()
	s, err := capture.New(context.Background(), cfg, opt)
	return testenv.Started(tb, s, err)
}

// serve runs s over HTTP until the test ends (closed before s).
func serve(tb testing.TB, s *capture.Server) *httptest.Server {
	ts := httptest.NewServer(s.Handler())
	tb.Cleanup(ts.Close)
	return ts
}

func post(t *testing.T, url, contentType, body string, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	return from(t, url, "", contentType, body, cookies...)
}

// from is post as the client at addr, if given, behind a trusted proxy
// (the test connects from loopback, which trusted_proxies includes).
func from(t *testing.T, url, addr, contentType, body string, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if addr != "" {
		req.Header.Set("X-Forwarded-For", addr)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func voterCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == voter.CookieName {
			return c
		}
	}
	return nil
}

func entries(t *testing.T, c *goredis.Client) []surge.Vote {
	t.Helper()
	msgs, err := c.XRange(context.Background(), "surge:entries", "-", "+").Result()
	if err != nil && err != goredis.Nil {
		t.Fatal(err)
	}
	var votes []surge.Vote
	for _, m := range msgs {
		e, err := surge.DecodeEntry(m.ID, m.Values)
		if err != nil {
			t.Fatal(err)
		}
		votes = append(votes, *e.Vote)
	}
	return votes
}

func TestVoteIsQueuedWithReceiptAndCookie(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)

	resp := post(t, ts.URL+"/vote", "application/json", `{"poll":"cats-vs-dogs","choice":"cats"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var rec capture.Receipt
	json.NewDecoder(resp.Body).Decode(&rec)
	if rec.Poll != "cats-vs-dogs" || rec.Choice != "cats" || rec.Node != "node-a" || rec.Receipt == "" {
		t.Fatalf("receipt %+v", rec)
	}
	ck := voterCookie(resp)
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure {
		t.Fatalf("voter cookie %+v", ck)
	}
	got := entries(t, rc)
	if len(got) != 1 || got[0].ID != rec.Receipt || got[0].Choice != "cats" || got[0].Node != "node-a" {
		t.Fatalf("queued %+v", got)
	}

	// The same voter changes their vote by form: same voter id, newer version.
	resp2 := post(t, ts.URL+"/vote", "application/x-www-form-urlencoded", "choice=dogs", ck)
	if resp2.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp2.StatusCode)
	}
	got = entries(t, rc)
	if len(got) != 2 || got[1].Voter != got[0].Voter || got[1].Version <= got[0].Version || got[1].Poll != surge.DefaultPollID {
		t.Fatalf("second vote %+v after %+v", got[1], got[0])
	}
}

func TestForgedCookieIsANewVoter(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	other, _ := voter.NewSigner([][]byte{[]byte("attacker-key-0123456789")})
	victim := voter.Identity{ID: "0123456789abcdef0123456789abcdef", Version: 1 << 60}
	forged := &http.Cookie{Name: voter.CookieName, Value: other.Sign(victim)}
	if resp := post(t, ts.URL+"/vote", "application/json", `{"choice":"cats"}`, forged); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := entries(t, rc)
	if len(got) != 1 || got[0].Voter == victim.ID || got[0].Version >= victim.Version {
		t.Fatalf("forged cookie was trusted: %+v", got)
	}
}

func TestBadVotesAreRefusedAndNothingIsQueued(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	tests := []struct {
		name, contentType, body string
		status                  int
	}{
		{"unknown poll", "application/json", `{"poll":"nope","choice":"cats"}`, 400},
		{"unknown choice", "application/json", `{"choice":"birds"}`, 400},
		{"missing choice", "application/json", `{}`, 400},
		{"invalid JSON", "application/json", `{"choice":`, 400},
		{"unknown field", "application/json", `{"choice":"cats","admin":true}`, 400},
		{"wrong content type", "text/plain", `choice=cats`, 415},
		{"body too large", "application/json", `{"choice":"cats","x":"` + strings.Repeat("a", 10000) + `"}`, 413},
		{"form unknown choice", "application/x-www-form-urlencoded", "choice=birds", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, ts.URL+"/vote", tt.contentType, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["error"] == "" {
				t.Fatalf("no JSON error message: %v %v", body, err)
			}
			if voterCookie(resp) != nil {
				t.Fatal("a refused vote set a cookie")
			}
		})
	}
	if n := rc.XLen(context.Background(), "surge:entries").Val(); n != 0 {
		t.Fatalf("%d entries queued by refused votes", n)
	}
}

func TestQueueDownIs503NeverAccepted(t *testing.T) {
	r := testenv.Redis(t)
	ts := newServer(t, r, func(c *capture.Config) { c.AppendTimeout = time.Second })
	if resp, _ := http.Get(ts.URL + "/healthz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d with Redis up", resp.StatusCode)
	}
	r.Kill()
	for range 5 {
		resp := post(t, ts.URL+"/vote", "application/json", `{"choice":"cats"}`)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d with Redis down, want 503", resp.StatusCode)
		}
	}
	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz %v %v with Redis down, want 503", resp.StatusCode, err)
	}
	// It names what is down, and not where (the detail is logged).
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"failing":"redis"`) || strings.Contains(string(body), r.Addr) {
		t.Fatalf("healthz with Redis down: %s, want failing redis and no address", body)
	}
}

func TestRefusesANonDurableRedis(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	rc.ConfigSet(context.Background(), "appendfsync", "everysec")
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.CookieKeys = r.Addr, []string{testKey}
	if _, err := capture.New(context.Background(), cfg, capture.Options{}); err == nil {
		t.Fatal("started on a Redis with appendfsync everysec")
	}
}

func TestPagesShowTheNode(t *testing.T) {
	r := testenv.Redis(t)
	ts := newServer(t, r, func(c *capture.Config) { c.Node = "host-<b>7</b>" })
	for _, path := range []string{"/", "/polls/cats-vs-dogs"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `id="node" title="the host that served this page">host-&lt;b&gt;7&lt;/b&gt;<`) {
			t.Fatalf("%s: status %d, node missing or unescaped:\n%s", path, resp.StatusCode, body)
		}
	}
	if resp, _ := http.Get(ts.URL + "/polls/nope"); resp.StatusCode != 404 {
		t.Fatalf("unknown poll page: %d", resp.StatusCode)
	}
}

// The vote counter of every configured poll exists at zero before any vote,
// so that a rate over it works from the first one.
func TestVoteCounterExistsFromStart(t *testing.T) {
	ts := newServer(t, testenv.Redis(t))
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, p := range surge.DefaultPolls() {
		if want := `surge_votes_captured_total{poll="` + p.ID + `"} 0`; !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s before any vote", want)
		}
	}
}
