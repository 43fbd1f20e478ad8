package capture_test

// Hostile requests against a real frontend (real Redis) and a real admin
// (real Postgres): each must get a clear 4xx with a JSON error message, and
// nothing may be written. Server limits (header size, slow clients) are
// checked on a real listener with the production http.Server settings.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
	"github.com/surge-vote/surge/internal/voter"
)

type hostileCase struct {
	name        string
	method      string // POST if empty
	path        string
	contentType string // none if empty
	body        string
	chunked     bool     // send the body without a Content-Length
	header      []string // more header name, value pairs
	status      int
}

// sendHostile sends c to base and returns the answer and its body.
func sendHostile(t *testing.T, base string, c hostileCase, auth bool) (*http.Response, []byte) {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader = strings.NewReader(c.body)
	if c.chunked {
		body = io.MultiReader(body) // unknown length: sent chunked
	}
	req, err := http.NewRequest(method, base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	for i := 0; i+1 < len(c.header); i += 2 {
		req.Header.Set(c.header[i], c.header[i+1])
	}
	if auth {
		req.SetBasicAuth("admin", adminPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, c.path, err)
	}
	return resp, b
}

// wantJSONError checks for the given status with a JSON {"error": "..."}.
func wantJSONError(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d; body %.300q", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json; body %.300q", ct, body)
	}
	var e httpx.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("no JSON error message: %.300q (%v)", body, err)
	}
	if frag := capture.GoInternals(e.Error); frag != "" {
		t.Errorf("message %q shows Go internals (%q)", e.Error, frag)
	}
}

// redisWrites is what a frontend has written to its Redis: every key.
func redisWrites(t *testing.T, rc *goredis.Client) []string {
	t.Helper()
	keys, err := rc.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

const (
	hostileJSON = "application/json"
	hostileForm = "application/x-www-form-urlencoded"
)

func nested(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

func TestHostileFrontendRequests(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	big := strings.Repeat("a", 5000)
	cases := []hostileCase{
		// Oversized bodies.
		{name: "vote JSON over max_body", path: "/vote", contentType: hostileJSON, body: `{"choice":"cats","poll":"` + big + `"}`, status: 413},
		{name: "vote form over max_body", path: "/vote", contentType: hostileForm, body: "choice=cats&x=" + big, status: 413},
		{name: "vote chunked over max_body", path: "/vote", contentType: hostileJSON, chunked: true, body: `{"choice":"cats","poll":"` + big + `"}`, status: 413},
		{name: "vote of 1 MiB", path: "/vote", contentType: hostileForm, body: "choice=cats&x=" + strings.Repeat("a", 1<<20), status: 413},
		{name: "order JSON over max_body", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":1,"order_id":"` + big + `"}`, status: 413},
		{name: "order form over max_body", path: "/orders", contentType: hostileForm, body: "item=1&quantity=1&x=" + big, status: 413},

		// Wrong content types.
		{name: "vote as text/plain", path: "/vote", contentType: "text/plain", body: `{"choice":"cats"}`, status: 415},
		{name: "vote without a content type", path: "/vote", body: `{"choice":"cats"}`, status: 415},
		{name: "vote as XML", path: "/vote", contentType: "application/xml", body: `<vote><choice>cats</choice></vote>`, status: 415},
		{name: "vote as multipart", path: "/vote", contentType: "multipart/form-data; boundary=x",
			body: "--x\r\nContent-Disposition: form-data; name=\"choice\"\r\n\r\ncats\r\n--x--\r\n", status: 415},
		{name: "vote with a malformed content type", path: "/vote", contentType: "application/json; charset", body: `{"choice":"cats"}`, status: 415},
		{name: "vote as a +json type", path: "/vote", contentType: "application/vnd.api+json", body: `{"choice":"cats"}`, status: 415},
		{name: "order as text/plain", path: "/orders", contentType: "text/plain", body: `{"item":1,"quantity":1}`, status: 415},

		// Invalid JSON.
		{name: "vote truncated JSON", path: "/vote", contentType: hostileJSON, body: `{"choice":`, status: 400},
		{name: "vote two JSON values", path: "/vote", contentType: hostileJSON, body: `{"choice":"cats"}{"choice":"dogs"}`, status: 400},
		{name: "vote JSON string", path: "/vote", contentType: hostileJSON, body: `"cats"`, status: 400},
		{name: "vote JSON array", path: "/vote", contentType: hostileJSON, body: `[{"choice":"cats"}]`, status: 400},
		{name: "vote unquoted keys", path: "/vote", contentType: hostileJSON, body: `{choice:cats}`, status: 400},
		{name: "vote JSON after a BOM", path: "/vote", contentType: hostileJSON, body: "\ufeff{\"choice\":\"cats\"}", status: 400},
		{name: "vote empty JSON body", path: "/vote", contentType: hostileJSON, body: ``, status: 400},
		{name: "order truncated JSON", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":`, status: 400},

		// Deep nesting.
		{name: "vote arrays nested 1900 deep", path: "/vote", contentType: hostileJSON, body: `{"choice":"cats","poll":` + nested("[", "]", 1900) + `}`, status: 400},
		{name: "vote objects nested 500 deep", path: "/vote", contentType: hostileJSON, body: `{"choice":` + nested(`{"a":`, "}", 500) + `}`, status: 400},
		{name: "vote nesting past max_body", path: "/vote", contentType: hostileJSON, body: `{"choice":` + nested("[", "]", 100000) + `}`, status: 413},
		{name: "order item nested", path: "/orders", contentType: hostileJSON, body: `{"item":` + nested("[", "]", 1900) + `,"quantity":1}`, status: 400},

		// Huge numbers.
		{name: "vote choice 1e999999", path: "/vote", contentType: hostileJSON, body: `{"choice":1e999999}`, status: 400},
		{name: "vote poll a 60-digit number", path: "/vote", contentType: hostileJSON, body: `{"poll":123456789012345678901234567890123456789012345678901234567890,"choice":"cats"}`, status: 400},
		{name: "order item 1e400", path: "/orders", contentType: hostileJSON, body: `{"item":1e400,"quantity":1}`, status: 400},
		{name: "order item past int64", path: "/orders", contentType: hostileJSON, body: `{"item":9223372036854775808,"quantity":1}`, status: 400},
		{name: "order item 20 digits", path: "/orders", contentType: hostileJSON, body: `{"item":99999999999999999999,"quantity":1}`, status: 400},
		{name: "order item min int64", path: "/orders", contentType: hostileJSON, body: `{"item":-9223372036854775808,"quantity":1}`, status: 400},
		{name: "order quantity past uint64", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":18446744073709551617}`, status: 400},
		{name: "order quantity 2^31", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":2147483648}`, status: 400},
		{name: "order form item past int64", path: "/orders", contentType: hostileForm, body: "item=9223372036854775808&quantity=1", status: 400},

		// Negative, zero, fractional and non-literal quantities.
		{name: "order quantity -1", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":-1}`, status: 400},
		{name: "order quantity 0", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":0}`, status: 400},
		{name: "order quantity -0", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":-0}`, status: 400},
		{name: "order quantity 1.5", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":1.5}`, status: 400},
		{name: "order quantity 1.0", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":1.0}`, status: 400},
		{name: "order quantity -0.5", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":-0.5}`, status: 400},
		{name: "order quantity 1e1", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":1e1}`, status: 400},
		{name: "order quantity 101", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":101}`, status: 400},
		{name: "order quantity as a string", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":"2"}`, status: 400},
		{name: "order quantity true", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":true}`, status: 400},
		{name: "order item -1", path: "/orders", contentType: hostileJSON, body: `{"item":-1,"quantity":1}`, status: 400},
		{name: "order item 1.5", path: "/orders", contentType: hostileJSON, body: `{"item":1.5,"quantity":1}`, status: 400},
		{name: "order form quantity -1", path: "/orders", contentType: hostileForm, body: "item=1&quantity=-1", status: 400},
		{name: "order form quantity 1.5", path: "/orders", contentType: hostileForm, body: "item=1&quantity=1.5", status: 400},
		{name: "order form quantity 0x10", path: "/orders", contentType: hostileForm, body: "item=1&quantity=0x10", status: 400},
		{name: "order form quantity with spaces", path: "/orders", contentType: hostileForm, body: "item=1&quantity=+1+", status: 400},
		{name: "order form quantity empty", path: "/orders", contentType: hostileForm, body: "item=1&quantity=", status: 400},

		// Unknown fields.
		{name: "vote sets its voter", path: "/vote", contentType: hostileJSON, body: `{"choice":"cats","voter":"0123456789abcdef0123456789abcdef"}`, status: 400},
		{name: "vote sets its version", path: "/vote", contentType: hostileJSON, body: `{"choice":"cats","version":9223372036854775807}`, status: 400},
		{name: "order sets its status", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":1,"status":"confirmed"}`, status: 400},
		{name: "order sets its node", path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":1,"node":"web-9"}`, status: 400},

		// Invalid UTF-8 and control characters.
		{name: "vote JSON choice with a stray byte", path: "/vote", contentType: hostileJSON, body: "{\"choice\":\"c\xffats\"}", status: 400},
		{name: "vote JSON poll with a truncated sequence", path: "/vote", contentType: hostileJSON, body: "{\"poll\":\"\xc3\",\"choice\":\"cats\"}", status: 400},
		{name: "vote JSON overlong slash", path: "/vote", contentType: hostileJSON, body: "{\"choice\":\"cats\xc0\xaf\"}", status: 400},
		{name: "vote JSON encoded surrogate", path: "/vote", contentType: hostileJSON, body: "{\"choice\":\"\xed\xa0\x80\"}", status: 400},
		{name: "vote JSON escaped lone surrogate", path: "/vote", contentType: hostileJSON, body: `{"choice":"\ud800"}`, status: 400},
		{name: "vote JSON NUL in choice", path: "/vote", contentType: hostileJSON, body: `{"choice":"cats\u0000"}`, status: 400},
		{name: "vote form raw invalid byte", path: "/vote", contentType: hostileForm, body: "choice=c\xffats", status: 400},
		{name: "vote form escaped invalid byte", path: "/vote", contentType: hostileForm, body: "choice=c%FFats", status: 400},
		{name: "vote form escaped NUL", path: "/vote", contentType: hostileForm, body: "choice=cats%00", status: 400},
		{name: "vote form bad escape", path: "/vote", contentType: hostileForm, body: "choice=%zz", status: 400},
		{name: "order JSON order_id with a stray byte", path: "/orders", contentType: hostileJSON, body: "{\"order_id\":\"k\xff\",\"item\":1,\"quantity\":1}", status: 400},
		{name: "order form order_id escaped invalid byte", path: "/orders", contentType: hostileForm, body: "order_id=k%FF&item=1&quantity=1", status: 400},
		{name: "order form order_id escaped NUL", path: "/orders", contentType: hostileForm, body: "order_id=k%00&item=1&quantity=1", status: 400},

		// Paths that do not exist.
		{name: "GET /nope", method: http.MethodGet, path: "/nope", status: 404},
		{name: "POST /votes", path: "/votes", contentType: hostileJSON, body: `{"choice":"cats"}`, status: 404},
		{name: "POST /vote/extra", path: "/vote/extra", contentType: hostileJSON, body: `{"choice":"cats"}`, status: 404},
		{name: "GET unknown poll page", method: http.MethodGet, path: "/polls/nope", status: 404},
		{name: "GET /polls/a/b", method: http.MethodGet, path: "/polls/a/b", status: 404},
		{name: "GET missing static file", method: http.MethodGet, path: "/static/nope.css", status: 404},
		{name: "GET escaped invalid byte", method: http.MethodGet, path: "/%FF", status: 404},
		{name: "POST admin items on a public frontend", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"x","quantity":1,"price":"1"}`, status: 404},
	}
	runHostile(t, ts.URL, false, cases, redisUntouched(rc))
}

// runHostile sends each case and checks its JSON error, that no voter cookie
// was set, and that nothing was written.
func runHostile(t *testing.T, base string, auth bool, cases []hostileCase, nothingWritten func(*testing.T)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := sendHostile(t, base, c, auth)
			wantJSONError(t, resp, body, c.status)
			if ck := voterCookie(resp); ck != nil {
				t.Errorf("a refused request set the voter cookie %q", ck.Value)
			}
			nothingWritten(t)
		})
	}
}

// redisUntouched checks that Redis holds no key at all.
func redisUntouched(rc *goredis.Client) func(*testing.T) {
	return func(t *testing.T) {
		t.Helper()
		if keys := redisWrites(t, rc); len(keys) != 0 {
			t.Fatalf("a refused request wrote to Redis: keys %v", keys)
		}
	}
}

// lastVote is the newest vote in the frontend's stream.
func lastVote(t *testing.T, rc *goredis.Client) surge.Vote {
	t.Helper()
	votes := entries(t, rc)
	if len(votes) == 0 {
		t.Fatal("no vote queued")
	}
	return votes[len(votes)-1]
}

func testSigner(t *testing.T, key string) *voter.Signer {
	t.Helper()
	s, err := voter.NewSigner([][]byte{[]byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A forged or damaged cookie is a new voter, never the voter it names.
func TestHostileForgedCookiesMakeANewVoter(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	real, forger := testSigner(t, testKey), testSigner(t, "attacker-key-0123456789")
	victim := voter.Identity{ID: "0123456789abcdef0123456789abcdef", Version: 1 << 60}
	genuine := real.Sign(voter.Identity{ID: "fedcba9876543210fedcba9876543210", Version: 1_700_000_000_000_000})
	_, sig, _ := strings.Cut(strings.TrimPrefix(genuine, "v1.fedcba9876543210fedcba9876543210.1700000000000000"), ".")
	for _, c := range []struct{ name, value, claims string }{
		{"signed with another key", forger.Sign(victim), victim.ID},
		{"genuine signature spliced onto another id", "v1." + victim.ID + ".1700000000000000." + sig, victim.ID},
		{"genuine cookie with a raised version", strings.Replace(genuine, ".1700000000000000.", ".1800000000000000.", 1), "fedcba9876543210fedcba9876543210"},
		{"genuine cookie without its signature", strings.TrimSuffix(genuine, sig), "fedcba9876543210fedcba9876543210"},
		{"genuine cookie with a truncated signature", genuine[:len(genuine)-2], "fedcba9876543210fedcba9876543210"},
		{"unsigned", "v1." + victim.ID + ".5", victim.ID},
		{"other version prefix", strings.Replace(forger.Sign(victim), "v1.", "v2.", 1), victim.ID},
		{"too long", "v1." + victim.ID + ".1." + strings.Repeat("A", 300), victim.ID},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := post(t, ts.URL+"/vote", hostileJSON, `{"choice":"cats"}`, &http.Cookie{Name: voter.CookieName, Value: c.value})
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("status %d, want 202 (as a new voter)", resp.StatusCode)
			}
			got := lastVote(t, rc)
			if got.Voter == c.claims || got.Voter == victim.ID {
				t.Fatalf("the forged cookie %q was trusted: queued voter %s", c.value, got.Voter)
			}
			if got.Version >= victim.Version {
				t.Fatalf("the forged version was trusted: queued version %d", got.Version)
			}
			ck := voterCookie(resp)
			if ck == nil {
				t.Fatal("no new voter cookie")
			}
			id, err := real.Verify(ck.Value)
			if err != nil || id.ID != got.Voter || id.Version != got.Version {
				t.Fatalf("new cookie %q = %+v, %v; want the queued voter %s at %d", ck.Value, id, err, got.Voter, got.Version)
			}
		})
	}
}

// frontend is a capture server on r whose clock is off by skew.
func frontend(t *testing.T, r *launcher.Redis, skew time.Duration) *capture.Server {
	t.Helper()
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.Node, cfg.CookieKeys = r.Addr, "node-a", []string{testKey}
	return startServer(t, cfg, capture.Options{Now: func() time.Time { return time.Now().Add(skew) }})
}

// adminService is the admin service on a fresh database, with a client of
// that database.
func adminService(tb testing.TB) (*capture.Server, *postgres.DB, capture.Config) {
	tb.Helper()
	url := testenv.PostgresURL(tb)
	cfg := adminConfig(url)
	return startServer(tb, cfg, capture.Options{}), openDB(tb, url), cfg
}

// A replayed old cookie is accepted as its voter, and its vote always gets a
// version above the cookie's. Whether it overrides a newer vote is the
// README's rule (greatest version, then event id): through a frontend whose
// clock is behind, it does not.
func TestHostileReplayedCookie(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	behind := httptest.NewServer(frontend(t, r, -time.Hour).Handler())
	t.Cleanup(behind.Close)
	signer := testSigner(t, testKey)
	cookieOf := func(resp *http.Response) (*http.Cookie, voter.Identity) {
		t.Helper()
		ck := voterCookie(resp)
		if resp.StatusCode != http.StatusAccepted || ck == nil {
			t.Fatalf("status %d, cookie %v", resp.StatusCode, ck)
		}
		id, err := signer.Verify(ck.Value)
		if err != nil {
			t.Fatal(err)
		}
		return ck, id
	}

	oldCookie, old := cookieOf(post(t, ts.URL+"/vote", hostileJSON, `{"choice":"cats"}`))
	first := lastVote(t, rc)
	_, newer := cookieOf(post(t, ts.URL+"/vote", hostileJSON, `{"choice":"dogs"}`, oldCookie))
	second := lastVote(t, rc)
	if newer.ID != old.ID || second.Version <= old.Version {
		t.Fatalf("second vote %+v after cookie %+v", second, old)
	}

	// The replay, through a frontend with a sound clock.
	_, replayed := cookieOf(post(t, ts.URL+"/vote", hostileJSON, `{"choice":"cats"}`, oldCookie))
	third := lastVote(t, rc)
	if third.Voter != old.ID || replayed.ID != old.ID {
		t.Fatalf("replayed cookie of %s queued voter %s", old.ID, third.Voter)
	}
	if third.Version <= old.Version || replayed.Version != third.Version {
		t.Fatalf("replayed cookie at version %d queued version %d (cookie back %d); want above the cookie's", old.Version, third.Version, replayed.Version)
	}
	if !third.Wins(second.Version, second.ID) {
		t.Fatalf("the replay, cast last by the clock, does not win: %+v vs %+v", third, second)
	}

	// The replay, through a frontend an hour behind: above the cookie, but
	// below the newer vote, which keeps counting.
	cookieOf(post(t, behind.URL+"/vote", hostileJSON, `{"choice":"cats"}`, oldCookie))
	fourth := lastVote(t, rc)
	if fourth.Voter != old.ID || fourth.Version != old.Version+1 {
		t.Fatalf("replay through a slow clock queued %+v; want voter %s at version %d", fourth, old.ID, old.Version+1)
	}
	if fourth.Wins(second.Version, second.ID) || !fourth.Wins(first.Version, first.ID) {
		t.Fatalf("replay at %d against the newer vote at %d and the old one at %d", fourth.Version, second.Version, first.Version)
	}
}

// pgState counts what admin writes.
func pgState(t *testing.T, db *postgres.DB) string {
	t.Helper()
	var items, quantity, polls, options int64
	err := db.Pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM items), (SELECT coalesce(sum(quantity), 0) FROM items),
		(SELECT count(*) FROM polls), (SELECT count(*) FROM poll_options)`).Scan(&items, &quantity, &polls, &options)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("items=%d quantity=%d polls=%d options=%d", items, quantity, polls, options)
}

// pgUntouched checks that Postgres still holds what it held before.
func pgUntouched(db *postgres.DB, before string) func(*testing.T) {
	return func(t *testing.T) {
		t.Helper()
		if after := pgState(t, db); after != before {
			t.Fatalf("a refused request wrote to Postgres: %s, was %s", after, before)
		}
	}
}

func TestHostileAdminRequests(t *testing.T) {
	ts, db := newAdmin(t)
	big := strings.Repeat("a", 5000)
	const item = `"name":"Mug","quantity":1,"price":"1.00"`
	const poll = `"id":"tea","title":"Tea?","options":["yes","no"]`
	cases := []hostileCase{
		// Oversized bodies.
		{name: "item JSON over max_body", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"` + big + `","quantity":1,"price":"1"}`, status: 413},
		{name: "item form over max_body", path: "/admin/api/items", contentType: hostileForm, body: "name=" + big + "&quantity=1&price=1", status: 413},
		{name: "item chunked over max_body", path: "/admin/api/items", contentType: hostileJSON, chunked: true, body: `{"name":"` + big + `","quantity":1,"price":"1"}`, status: 413},
		{name: "item of 1 MiB", path: "/admin/api/items", contentType: hostileForm, body: "name=x&quantity=1&price=1&x=" + strings.Repeat("a", 1<<20), status: 413},
		{name: "poll JSON over max_body", path: "/admin/api/polls", contentType: hostileJSON, body: `{"id":"tea","title":"` + big + `","options":["a","b"]}`, status: 413},

		// Wrong content types.
		{name: "item as text/plain", path: "/admin/api/items", contentType: "text/plain", body: `{` + item + `}`, status: 415},
		{name: "item without a content type", path: "/admin/api/items", body: `{` + item + `}`, status: 415},
		{name: "item as multipart", path: "/admin/api/items", contentType: "multipart/form-data; boundary=x",
			body: "--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nMug\r\n--x--\r\n", status: 415},
		{name: "poll as XML", path: "/admin/api/polls", contentType: "application/xml", body: `<poll id="tea"/>`, status: 415},

		// Invalid JSON.
		{name: "item truncated JSON", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":`, status: 400},
		{name: "item two JSON values", path: "/admin/api/items", contentType: hostileJSON, body: `{` + item + `}{}`, status: 400},
		{name: "item JSON array", path: "/admin/api/items", contentType: hostileJSON, body: `[{` + item + `}]`, status: 400},
		{name: "item JSON null", path: "/admin/api/items", contentType: hostileJSON, body: `null`, status: 400},
		{name: "poll truncated JSON", path: "/admin/api/polls", contentType: hostileJSON, body: `{"id":"tea","options":["a",`, status: 400},
		{name: "poll JSON null", path: "/admin/api/polls", contentType: hostileJSON, body: `null`, status: 400},

		// Deep nesting.
		{name: "item name nested 1900 deep", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":` + nested("[", "]", 1900) + `,"quantity":1,"price":"1"}`, status: 400},
		{name: "item price nested", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1,"price":` + nested(`{"a":`, "}", 500) + `}`, status: 400},
		{name: "poll options nested", path: "/admin/api/polls", contentType: hostileJSON, body: `{"id":"tea","options":` + nested("[", "]", 1900) + `}`, status: 400},

		// Huge numbers.
		{name: "item quantity 1e999999", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1e999999,"price":"1"}`, status: 400},
		{name: "item quantity 30 digits", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":999999999999999999999999999999,"price":"1"}`, status: 400},
		{name: "item quantity past int64", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":9223372036854775808,"price":"1"}`, status: 400},
		{name: "item price 1e400", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1,"price":1e400}`, status: 400},
		{name: "item price 20 digits", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1,"price":"99999999999999999999.99"}`, status: 400},
		{name: "item form quantity past int64", path: "/admin/api/items", contentType: hostileForm, body: "name=Mug&quantity=9223372036854775808&price=1", status: 400},
		{name: "poll id a number", path: "/admin/api/polls", contentType: hostileJSON, body: `{"id":1e999,"options":["a","b"]}`, status: 400},

		// Negative and fractional quantities and prices.
		{name: "item quantity -1", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":-1,"price":"1"}`, status: 400},
		{name: "item quantity 1.5", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1.5,"price":"1"}`, status: 400},
		{name: "item quantity 1e1", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1e1,"price":"1"}`, status: 400},
		{name: "item quantity as a string", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":"1","price":"1"}`, status: 400},
		{name: "item form quantity -1", path: "/admin/api/items", contentType: hostileForm, body: "name=Mug&quantity=-1&price=1", status: 400},
		{name: "item form quantity 1.5", path: "/admin/api/items", contentType: hostileForm, body: "name=Mug&quantity=1.5&price=1", status: 400},
		{name: "item price -1", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1,"price":"-1"}`, status: 400},
		{name: "item price -0.01 as a number", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1,"price":-0.01}`, status: 400},
		{name: "item price three decimals", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1,"price":"1.005"}`, status: 400},
		{name: "item form price -1", path: "/admin/api/items", contentType: hostileForm, body: "name=Mug&quantity=1&price=-1", status: 400},

		// Unknown fields.
		{name: "item sets its id", path: "/admin/api/items", contentType: hostileJSON, body: `{` + item + `,"id":7}`, status: 400},
		{name: "item sets price_cents", path: "/admin/api/items", contentType: hostileJSON, body: `{` + item + `,"price_cents":1}`, status: 400},
		{name: "poll sets counts", path: "/admin/api/polls", contentType: hostileJSON, body: `{` + poll + `,"counts":{"yes":100}}`, status: 400},

		// Invalid UTF-8 and control characters.
		{name: "item JSON name with a stray byte", path: "/admin/api/items", contentType: hostileJSON, body: "{\"name\":\"M\xffug\",\"quantity\":1,\"price\":\"1\"}", status: 400},
		{name: "item JSON name with NUL", path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mu\u0000g","quantity":1,"price":"1"}`, status: 400},
		{name: "item form name raw invalid byte", path: "/admin/api/items", contentType: hostileForm, body: "name=M\xffug&quantity=1&price=1", status: 400},
		{name: "item form name escaped invalid byte", path: "/admin/api/items", contentType: hostileForm, body: "name=M%FFug&quantity=1&price=1", status: 400},
		{name: "item form name escaped NUL", path: "/admin/api/items", contentType: hostileForm, body: "name=Mu%00g&quantity=1&price=1", status: 400},
		{name: "poll JSON title with a stray byte", path: "/admin/api/polls", contentType: hostileJSON, body: "{\"id\":\"tea\",\"title\":\"T\xffa\",\"options\":[\"yes\",\"no\"]}", status: 400},
		{name: "poll form option escaped invalid byte", path: "/admin/api/polls", contentType: hostileForm, body: "id=tea&title=Tea&options=y%FFs,no", status: 400},

		// Paths that do not exist.
		{name: "GET /admin/api/nope", method: http.MethodGet, path: "/admin/api/nope", status: 404},
		{name: "POST /admin/api/item", path: "/admin/api/item", contentType: hostileJSON, body: `{` + item + `}`, status: 404},
		{name: "POST /vote on admin", path: "/vote", contentType: hostileJSON, body: `{"choice":"cats"}`, status: 404},
	}
	before := pgState(t, db)
	runHostile(t, ts.URL, true, cases, pgUntouched(db, before))
	// Without credentials, even a hostile body is a 401 and nothing else.
	t.Run("no credentials and a 1 MiB body", func(t *testing.T) {
		resp, body := sendHostile(t, ts.URL, hostileCase{path: "/admin/api/items", contentType: hostileForm,
			body: "name=x&quantity=1&price=1&x=" + strings.Repeat("a", 1<<20)}, false)
		wantJSONError(t, resp, body, http.StatusUnauthorized)
		pgUntouched(db, before)(t)
	})
}

// serveReal serves h on a real loopback listener with the production
// http.Server (httpx.NewServer), adjusted by tweak.
func serveReal(t *testing.T, h http.Handler, tweak func(*http.Server)) string {
	t.Helper()
	srv := httpx.NewServer(h)
	if tweak != nil {
		tweak(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawExchange writes req on a fresh connection (in the background, since a
// server may answer before reading it all) and reads one answer.
func rawExchange(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(conn, req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func rawVote(headers string) string {
	const body = `{"choice":"cats"}`
	return fmt.Sprintf("POST /vote HTTP/1.1\r\nHost: surge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s", len(body), headers, body)
}

// headerFloods are header sections over httpx.NewServer's MaxHeaderBytes
// (64 KiB) and well under net/http's default (1 MiB).
func headerFloods() map[string]string {
	var many strings.Builder
	for i := range 8000 {
		fmt.Fprintf(&many, "X-Flood-%d: v\r\n", i)
	}
	return map[string]string{
		"one 100 KiB header":  "X-Big: " + strings.Repeat("a", 100<<10) + "\r\n",
		"8000 small headers":  many.String(),
		"a 100 KiB cookie":    "Cookie: " + voter.CookieName + "=" + strings.Repeat("a", 100<<10) + "\r\n",
		"100 KiB of cookies":  strings.Repeat("Cookie: a=b; c=d; e=f; g=h; i=j; k=l; m=n\r\n", 2500),
		"a 100 KiB auth line": "Authorization: Basic " + strings.Repeat("Y", 100<<10) + "\r\n",
	}
}

func TestHostileHeaderFloodsAre431(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	addr := serveReal(t, frontend(t, r, 0).Handler(), nil)
	for name, flood := range headerFloods() {
		t.Run(name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, rawVote(flood))
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431; body %.200q", resp.StatusCode, body)
			}
			redisUntouched(rc)(t)
		})
	}
	// The same vote with 40 KiB of headers is served: the limit is the
	// server's, not lower.
	resp, body := rawExchange(t, addr, rawVote("X-Big: "+strings.Repeat("a", 40<<10)+"\r\n"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("vote with 40 KiB of headers: %d %.200q", resp.StatusCode, body)
	}
	if n := len(entries(t, rc)); n != 1 {
		t.Fatalf("%d votes queued, want 1", n)
	}
}

func TestHostileAdminHeaderFloodsAre431(t *testing.T) {
	s, db, _ := adminService(t)
	addr := serveReal(t, s.Handler(), nil)
	before := pgState(t, db)
	const body = `{"name":"Mug","quantity":1,"price":"1.00"}`
	for name, flood := range headerFloods() {
		t.Run(name, func(t *testing.T) {
			req := fmt.Sprintf("POST /admin/api/items HTTP/1.1\r\nHost: surge\r\nAuthorization: Basic YWRtaW46YWRtaW4tcGFzc3dvcmQtMTIz\r\n"+
				"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s", len(body), flood, body)
			resp, b := rawExchange(t, addr, req)
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431; body %.200q", resp.StatusCode, b)
			}
			pgUntouched(db, before)(t)
		})
	}
}

// A client that sends its headers slower than ReadHeaderTimeout loses its
// connection, and its vote is never queued.
func TestHostileSlowClientsAreCut(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	const timeout = 300 * time.Millisecond
	addr := serveReal(t, frontend(t, r, 0).Handler(), func(srv *http.Server) { srv.ReadHeaderTimeout = timeout })

	// cutAfter sends req at the given pace (all of it at once if 0) and
	// returns how long the server kept the connection, and what it sent.
	cutAfter := func(t *testing.T, req string, pace time.Duration) (time.Duration, []byte) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		conn.SetDeadline(start.Add(20 * timeout))
		go func() {
			if pace == 0 {
				io.WriteString(conn, req)
				return
			}
			for i := range len(req) {
				if _, err := conn.Write([]byte{req[i]}); err != nil {
					return // cut
				}
				time.Sleep(pace) // the slow client is what is tested: kept
			}
		}()
		got, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection was still open after %v", time.Since(start))
		}
		return time.Since(start), got
	}

	for _, c := range []struct {
		name string
		req  string
		pace time.Duration
	}{
		{"stalls after the request line", "POST /vote HTTP/1.1\r\n", 0},
		{"stalls in a header", "POST /vote HTTP/1.1\r\nHost: surge\r\nContent-Type: appl", 0},
		{"stalls before the blank line", "POST /vote HTTP/1.1\r\nHost: surge\r\nContent-Type: application/json\r\nContent-Length: 17\r\n", 0},
		{"trickles a whole vote a byte at a time", rawVote(""), 25 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			took, got := cutAfter(t, c.req, c.pace)
			// Cut mid-line, net/http may first refuse the partial line
			// with its own plain "400 Bad Request"; never anything else.
			if len(got) != 0 && !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
				t.Fatalf("the server answered a slow client: %.200q", got)
			}
			if took < timeout/2 || took > 10*timeout {
				t.Fatalf("connection closed after %v; ReadHeaderTimeout is %v", took, timeout)
			}
			redisUntouched(rc)(t)
		})
	}
}
