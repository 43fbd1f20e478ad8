package capture_test

// Hostile requests against a real frontend (real Redis): each must get a
// clear 4xx with a JSON error message, and nothing may be written. Server limits (header size, slow clients) are
// checked on a real listener with the production http.Server settings.

import (
	"context"
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
	"github.com/surge-vote/surge/internal/httpx/httpxtest"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
	"github.com/surge-vote/surge/internal/voter"
)

// redisWrites is what a frontend has written to its Redis: every key.
func redisWrites(t *testing.T, rc *goredis.Client) []string {
	t.Helper()
	keys, err := rc.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestHostileFrontendRequests(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	big := strings.Repeat("a", 5000)
	twentyOneLines := `{"lines":[` + strings.Repeat(`{"item":1,"quantity":1},`, 20) + `{"item":21,"quantity":1}]}`
	cases := []httpxtest.Hostile{
		// Oversized bodies.
		{Name: "vote JSON over max_body", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":"cats","poll":"` + big + `"}`, Status: 413},
		{Name: "vote form over max_body", Path: "/vote", ContentType: httpxtest.Form, Body: "choice=cats&x=" + big, Status: 413},
		{Name: "vote chunked over max_body", Path: "/vote", ContentType: httpxtest.JSON, Chunked: true, Body: `{"choice":"cats","poll":"` + big + `"}`, Status: 413},
		{Name: "vote of 1 MiB", Path: "/vote", ContentType: httpxtest.Form, Body: "choice=cats&x=" + strings.Repeat("a", 1<<20), Status: 413},
		{Name: "order JSON over max_body", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":1,"order_id":"` + big + `"}`, Status: 413},
		{Name: "order form over max_body", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=1&x=" + big, Status: 413},

		// Wrong content types.
		{Name: "vote as text/plain", Path: "/vote", ContentType: "text/plain", Body: `{"choice":"cats"}`, Status: 415},
		{Name: "vote without a content type", Path: "/vote", Body: `{"choice":"cats"}`, Status: 415},
		{Name: "vote as XML", Path: "/vote", ContentType: "application/xml", Body: `<vote><choice>cats</choice></vote>`, Status: 415},
		{Name: "vote as multipart", Path: "/vote", ContentType: "multipart/form-data; boundary=x",
			Body: "--x\r\nContent-Disposition: form-data; name=\"choice\"\r\n\r\ncats\r\n--x--\r\n", Status: 415},
		{Name: "vote with a malformed content type", Path: "/vote", ContentType: "application/json; charset", Body: `{"choice":"cats"}`, Status: 415},
		{Name: "vote as a +json type", Path: "/vote", ContentType: "application/vnd.api+json", Body: `{"choice":"cats"}`, Status: 415},
		{Name: "order as text/plain", Path: "/orders", ContentType: "text/plain", Body: `{"item":1,"quantity":1}`, Status: 415},

		// Invalid JSON.
		{Name: "vote truncated JSON", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":`, Status: 400},
		{Name: "vote two JSON values", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":"cats"}{"choice":"dogs"}`, Status: 400},
		{Name: "vote JSON string", Path: "/vote", ContentType: httpxtest.JSON, Body: `"cats"`, Status: 400},
		{Name: "vote JSON array", Path: "/vote", ContentType: httpxtest.JSON, Body: `[{"choice":"cats"}]`, Status: 400},
		{Name: "vote unquoted keys", Path: "/vote", ContentType: httpxtest.JSON, Body: `{choice:cats}`, Status: 400},
		{Name: "vote JSON after a BOM", Path: "/vote", ContentType: httpxtest.JSON, Body: "\ufeff{\"choice\":\"cats\"}", Status: 400},
		{Name: "vote empty JSON body", Path: "/vote", ContentType: httpxtest.JSON, Body: ``, Status: 400},
		{Name: "order truncated JSON", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":`, Status: 400},

		// Deep nesting.
		{Name: "vote arrays httpxtest.Nested 1900 deep", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":"cats","poll":` + httpxtest.Nested("[", "]", 1900) + `}`, Status: 400},
		{Name: "vote objects httpxtest.Nested 500 deep", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":` + httpxtest.Nested(`{"a":`, "}", 500) + `}`, Status: 400},
		{Name: "vote nesting past max_body", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":` + httpxtest.Nested("[", "]", 100000) + `}`, Status: 413},
		{Name: "order item httpxtest.Nested", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":` + httpxtest.Nested("[", "]", 1900) + `,"quantity":1}`, Status: 400},

		// Huge numbers.
		{Name: "vote choice 1e999999", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":1e999999}`, Status: 400},
		{Name: "vote poll a 60-digit number", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"poll":123456789012345678901234567890123456789012345678901234567890,"choice":"cats"}`, Status: 400},
		{Name: "order item 1e400", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1e400,"quantity":1}`, Status: 400},
		{Name: "order item past int64", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":9223372036854775808,"quantity":1}`, Status: 400},
		{Name: "order item 20 digits", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":99999999999999999999,"quantity":1}`, Status: 400},
		{Name: "order item min int64", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":-9223372036854775808,"quantity":1}`, Status: 400},
		{Name: "order quantity past uint64", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":18446744073709551617}`, Status: 400},
		{Name: "order quantity 2^31", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":2147483648}`, Status: 400},
		{Name: "order form item past int64", Path: "/orders", ContentType: httpxtest.Form, Body: "item=9223372036854775808&quantity=1", Status: 400},

		// Negative, zero, fractional and non-literal quantities.
		{Name: "order quantity -1", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":-1}`, Status: 400},
		{Name: "order quantity 0", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":0}`, Status: 400},
		{Name: "order quantity -0", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":-0}`, Status: 400},
		{Name: "order quantity 1.5", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":1.5}`, Status: 400},
		{Name: "order quantity 1.0", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":1.0}`, Status: 400},
		{Name: "order quantity -0.5", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":-0.5}`, Status: 400},
		{Name: "order quantity 1e1", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":1e1}`, Status: 400},
		{Name: "order quantity 101", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":101}`, Status: 400},
		{Name: "order quantity as a string", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":"2"}`, Status: 400},
		{Name: "order quantity true", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":true}`, Status: 400},
		{Name: "order item -1", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":-1,"quantity":1}`, Status: 400},
		{Name: "order item 1.5", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1.5,"quantity":1}`, Status: 400},
		{Name: "order form quantity -1", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=-1", Status: 400},
		{Name: "order form quantity 1.5", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=1.5", Status: 400},
		{Name: "order form quantity 0x10", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=0x10", Status: 400},
		{Name: "order form quantity with spaces", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=+1+", Status: 400},
		{Name: "order form quantity empty", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=", Status: 400},

		// Carts.
		{Name: "cart of 21 lines", Path: "/orders", ContentType: httpxtest.JSON, Body: twentyOneLines, Status: 400},
		{Name: "cart of no lines", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[]}`, Status: 400},
		{Name: "cart with an item twice", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":1,"quantity":1},{"item":1,"quantity":2}]}`, Status: 400},
		{Name: "cart line quantity 0", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":1,"quantity":1},{"item":2,"quantity":0}]}`, Status: 400},
		{Name: "cart line quantity -1", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":1,"quantity":-1}]}`, Status: 400},
		{Name: "cart line quantity 101", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":1,"quantity":101}]}`, Status: 400},
		{Name: "cart line quantity 1.5", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":1,"quantity":1.5}]}`, Status: 400},
		{Name: "cart line quantity a string", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":1,"quantity":"1"}]}`, Status: 400},
		{Name: "cart line item a string", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":"1","quantity":1}]}`, Status: 400},
		{Name: "cart line item 0", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":0,"quantity":1}]}`, Status: 400},
		{Name: "cart line without a quantity", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":1}]}`, Status: 400},
		{Name: "cart line a number", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[1]}`, Status: 400},
		{Name: "cart line null", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[null]}`, Status: 400},
		{Name: "cart line a list", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[[1,1]]}`, Status: 400},
		{Name: "cart lines an object", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":{"item":1,"quantity":1}}`, Status: 400},
		{Name: "cart lines a string", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":"1:1"}`, Status: 400},
		{Name: "cart line sets its price", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":1,"quantity":1,"price":"0.00"}]}`, Status: 400},
		{Name: "cart and an item", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":[{"item":1,"quantity":1}],"item":2,"quantity":1}`, Status: 400},
		{Name: "cart lines nested deep", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"lines":` + httpxtest.Nested("[", "]", 1900) + `}`, Status: 400},
		{Name: "cart form with a quantity missing", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=1&item=2", Status: 400},
		{Name: "cart form with an item twice", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=1&item=1&quantity=2", Status: 400},
		{Name: "cart form quantity 0", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=1&item=2&quantity=0", Status: 400},

		// Unknown fields.
		{Name: "vote sets its voter", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":"cats","voter":"0123456789abcdef0123456789abcdef"}`, Status: 400},
		{Name: "vote sets its version", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":"cats","version":9223372036854775807}`, Status: 400},
		{Name: "order sets its status", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":1,"status":"confirmed"}`, Status: 400},
		{Name: "order sets its node", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":1,"node":"web-9"}`, Status: 400},

		// Invalid UTF-8 and control characters.
		{Name: "vote JSON choice with a stray byte", Path: "/vote", ContentType: httpxtest.JSON, Body: "{\"choice\":\"c\xffats\"}", Status: 400},
		{Name: "vote JSON poll with a truncated sequence", Path: "/vote", ContentType: httpxtest.JSON, Body: "{\"poll\":\"\xc3\",\"choice\":\"cats\"}", Status: 400},
		{Name: "vote JSON overlong slash", Path: "/vote", ContentType: httpxtest.JSON, Body: "{\"choice\":\"cats\xc0\xaf\"}", Status: 400},
		{Name: "vote JSON encoded surrogate", Path: "/vote", ContentType: httpxtest.JSON, Body: "{\"choice\":\"\xed\xa0\x80\"}", Status: 400},
		{Name: "vote JSON escaped lone surrogate", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":"\ud800"}`, Status: 400},
		{Name: "vote JSON NUL in choice", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":"cats\u0000"}`, Status: 400},
		{Name: "vote form raw invalid byte", Path: "/vote", ContentType: httpxtest.Form, Body: "choice=c\xffats", Status: 400},
		{Name: "vote form escaped invalid byte", Path: "/vote", ContentType: httpxtest.Form, Body: "choice=c%FFats", Status: 400},
		{Name: "vote form escaped NUL", Path: "/vote", ContentType: httpxtest.Form, Body: "choice=cats%00", Status: 400},
		{Name: "vote form bad escape", Path: "/vote", ContentType: httpxtest.Form, Body: "choice=%zz", Status: 400},
		{Name: "order JSON order_id with a stray byte", Path: "/orders", ContentType: httpxtest.JSON, Body: "{\"order_id\":\"k\xff\",\"item\":1,\"quantity\":1}", Status: 400},
		{Name: "order form order_id escaped invalid byte", Path: "/orders", ContentType: httpxtest.Form, Body: "order_id=k%FF&item=1&quantity=1", Status: 400},
		{Name: "order form order_id escaped NUL", Path: "/orders", ContentType: httpxtest.Form, Body: "order_id=k%00&item=1&quantity=1", Status: 400},

		// Paths that do not exist.
		{Name: "GET /nope", Method: http.MethodGet, Path: "/nope", Status: 404},
		{Name: "POST /votes", Path: "/votes", ContentType: httpxtest.JSON, Body: `{"choice":"cats"}`, Status: 404},
		{Name: "POST /vote/extra", Path: "/vote/extra", ContentType: httpxtest.JSON, Body: `{"choice":"cats"}`, Status: 404},
		{Name: "GET unknown poll page", Method: http.MethodGet, Path: "/polls/nope", Status: 404},
		{Name: "GET /polls/a/b", Method: http.MethodGet, Path: "/polls/a/b", Status: 404},
		{Name: "GET missing static file", Method: http.MethodGet, Path: "/static/nope.css", Status: 404},
		{Name: "GET escaped invalid byte", Method: http.MethodGet, Path: "/%FF", Status: 404},
		{Name: "POST admin items on a public frontend", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"x","quantity":1,"price":"1"}`, Status: 404},
	}
	httpxtest.Run(t, ts.URL, nil, cases, redisUntouched(rc))
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
			resp := post(t, ts.URL+"/vote", httpxtest.JSON, `{"choice":"cats"}`, &http.Cookie{Name: voter.CookieName, Value: c.value})
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

	oldCookie, old := cookieOf(post(t, ts.URL+"/vote", httpxtest.JSON, `{"choice":"cats"}`))
	first := lastVote(t, rc)
	_, newer := cookieOf(post(t, ts.URL+"/vote", httpxtest.JSON, `{"choice":"dogs"}`, oldCookie))
	second := lastVote(t, rc)
	if newer.ID != old.ID || second.Version <= old.Version {
		t.Fatalf("second vote %+v after cookie %+v", second, old)
	}

	// The replay, through a frontend with a sound clock.
	_, replayed := cookieOf(post(t, ts.URL+"/vote", httpxtest.JSON, `{"choice":"cats"}`, oldCookie))
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
	cookieOf(post(t, behind.URL+"/vote", httpxtest.JSON, `{"choice":"cats"}`, oldCookie))
	fourth := lastVote(t, rc)
	if fourth.Voter != old.ID || fourth.Version != old.Version+1 {
		t.Fatalf("replay through a slow clock queued %+v; want voter %s at version %d", fourth, old.ID, old.Version+1)
	}
	if fourth.Wins(second.Version, second.ID) || !fourth.Wins(first.Version, first.ID) {
		t.Fatalf("replay at %d against the newer vote at %d and the old one at %d", fourth.Version, second.Version, first.Version)
	}
}

func rawVote(headers string) string {
	const body = `{"choice":"cats"}`
	return fmt.Sprintf("POST /vote HTTP/1.1\r\nHost: surge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s", len(body), headers, body)
}

func TestHostileHeaderFloodsAre431(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	addr := httpxtest.ServeReal(t, frontend(t, r, 0).Handler(), nil)
	for name, flood := range httpxtest.HeaderFloods() {
		t.Run(name, func(t *testing.T) {
			resp, body := httpxtest.RawExchange(t, addr, rawVote(flood))
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431; body %.200q", resp.StatusCode, body)
			}
			redisUntouched(rc)(t)
		})
	}
	// The same vote with 40 KiB of headers is served: the limit is the
	// server's, not lower.
	resp, body := httpxtest.RawExchange(t, addr, rawVote("X-Big: "+strings.Repeat("a", 40<<10)+"\r\n"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("vote with 40 KiB of headers: %d %.200q", resp.StatusCode, body)
	}
	if n := len(entries(t, rc)); n != 1 {
		t.Fatalf("%d votes queued, want 1", n)
	}
}

// A client that sends its headers slower than ReadHeaderTimeout loses its
// connection, and its vote is never queued.
func TestHostileSlowClientsAreCut(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	const timeout = 300 * time.Millisecond
	addr := httpxtest.ServeReal(t, frontend(t, r, 0).Handler(), func(srv *http.Server) { srv.ReadHeaderTimeout = timeout })

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
