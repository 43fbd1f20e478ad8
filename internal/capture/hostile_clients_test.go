package capture_test

// Hostile clients (issue 17): ballot stuffing, cross-site posts, order
// floods and order ids claimed with another payload. The helpers are in
// hostile_test.go and capture_test.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/httpx/httpxtest"
	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// Another site's page cannot make its visitors' browsers vote or order here
// (a hidden form, or a text/plain "form" carrying JSON): 403, no cookie,
// nothing queued. The browser says where the post comes from in
// Sec-Fetch-Site, or (older ones) in Origin.
func TestHostileCrossSitePostsAreRefused(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	crossSite := []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}
	httpxtest.Run(t, ts.URL, nil, []httpxtest.Hostile{
		{Name: "hidden form vote", Path: "/vote", ContentType: httpxtest.Form, Body: "choice=cats", Header: crossSite, Status: 403},
		{Name: "hidden form vote in another poll", Path: "/vote", ContentType: httpxtest.Form, Body: "poll=cats-vs-dogs&choice=dogs", Header: crossSite, Status: 403},
		{Name: "text/plain form carrying a JSON vote", Path: "/vote", ContentType: "text/plain", Body: `{"choice":"cats"}`, Header: crossSite, Status: 403},
		{Name: "hidden form order", Path: "/orders", ContentType: httpxtest.Form, Body: "item=1&quantity=1", Header: crossSite, Status: 403},
		{Name: "vote from a sibling subdomain", Path: "/vote", ContentType: httpxtest.Form, Body: "choice=cats",
			Header: []string{"Sec-Fetch-Site", "same-site", "Origin", "https://evil.surge.example"}, Status: 403},
		{Name: "vote from an old browser (Origin only)", Path: "/vote", ContentType: httpxtest.Form, Body: "choice=cats",
			Header: []string{"Origin", "https://evil.example"}, Status: 403},
		{Name: "JSON order from an old browser (Origin only)", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":1}`,
			Header: []string{"Origin", "https://evil.example"}, Status: 403},
	}, redisUntouched(rc))

	// The site's own pages, and clients that are not browsers, still vote.
	host := strings.TrimPrefix(ts.URL, "http://")
	for _, h := range [][]string{
		{"Sec-Fetch-Site", "same-origin", "Origin", ts.URL},
		{"Sec-Fetch-Site", "none"}, // typed into the address bar, a bookmark
		{"Origin", "http://" + host},
		nil, // curl, the load tool
	} {
		resp, body := httpxtest.Send(t, ts.URL, httpxtest.Hostile{Path: "/vote", ContentType: httpxtest.Form, Body: "choice=cats", Header: h}, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("same-origin vote with %v: %d %s", h, resp.StatusCode, body)
		}
	}
}

// frozenFrontend is a frontend with the default limits whose clock stands
// still, so what a limit lets through is exact.
func frozenFrontend(t *testing.T, r *launcher.Redis, mutate ...func(*capture.Config)) (string, *testenv.Clock) {
	t.Helper()
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.Node, cfg.CookieKeys = r.Addr, "node-a", []string{testKey}
	for _, m := range mutate {
		m(&cfg)
	}
	clk := testenv.NewClock(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	return serve(t, startServer(t, cfg, capture.Options{Now: clk.Now})).URL, clk
}

// flood sends n requests from addr and returns how many got 202; every
// other answer must be a 429 with Retry-After that sets no cookie.
func flood(t *testing.T, n int, send func() *http.Response) (accepted int) {
	t.Helper()
	for range n {
		resp := send()
		switch resp.StatusCode {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
			}
			if ck := voterCookie(resp); ck != nil {
				t.Fatalf("a refused vote set the voter cookie %q", ck.Value)
			}
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	return accepted
}

func streamLen(t *testing.T, rc *goredis.Client) int {
	t.Helper()
	n, err := rc.XLen(context.Background(), "surge:entries").Result()
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// Cookie-less votes are new voters: one address may create
// new_voters_burst of them at once, then new_voters_per_ip a minute. Votes
// past that are 429 and never queued; other addresses, and voters who
// already hold a cookie, vote on.
func TestHostileNewVoterFloodIsLimitedPerAddress(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	url, clk := frozenFrontend(t, r)
	def := capture.DefaultConfig()
	if def.NewVotersPerIP <= 0 {
		t.Fatal("the new-voter limit is off by default")
	}
	burst, perMinute := def.NewVotersBurst, def.NewVotersPerIP
	vote := func(addr string, cookies ...*http.Cookie) func() *http.Response {
		return func() *http.Response {
			return from(t, url+"/vote", addr, httpxtest.JSON, `{"choice":"cats"}`, cookies...)
		}
	}

	const stuffer = "198.51.100.7"
	first := from(t, url+"/vote", stuffer, httpxtest.JSON, `{"choice":"cats"}`)
	voter := voterCookie(first)
	if first.StatusCode != http.StatusAccepted || voter == nil {
		t.Fatalf("first vote: %d", first.StatusCode)
	}
	if got := 1 + flood(t, burst+80, vote(stuffer)); got != burst {
		t.Fatalf("%d new voters accepted from one address, want the burst of %d", got, burst)
	}
	if n := streamLen(t, rc); n != burst {
		t.Fatalf("%d votes queued, want %d: refused votes were queued", n, burst)
	}
	for _, c := range []struct {
		name string
		send func() *http.Response
		want int
	}{
		{"another address", vote("198.51.100.8"), http.StatusAccepted},
		{"a known voter at the flooding address", vote(stuffer, voter), http.StatusAccepted},
		{"a forged cookie at the flooding address", vote(stuffer, &http.Cookie{Name: voter.Name, Value: voter.Value + "x"}), http.StatusTooManyRequests},
		{"the address as IPv4-mapped IPv6", vote("::ffff:" + stuffer), http.StatusTooManyRequests},
	} {
		if got := c.send().StatusCode; got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}

	// A minute later the address has per-minute more, no more.
	clk.Advance(time.Minute)
	if got := flood(t, perMinute+20, vote(stuffer)); got != perMinute {
		t.Fatalf("a minute later %d new voters accepted, want %d", got, perMinute)
	}

	// An IPv6 client counts as its /64: the addresses one subscriber holds.
	if got := flood(t, burst+1, vote("2001:db8:0:1::1")); got != burst {
		t.Fatalf("%d new voters from one IPv6 address, want %d", got, burst)
	}
	if got := vote("2001:db8:0:1::ffff")().StatusCode; got != http.StatusTooManyRequests {
		t.Fatalf("another address of the same /64: %d, want 429", got)
	}
	if got := vote("2001:db8:0:2::1")().StatusCode; got != http.StatusAccepted {
		t.Fatalf("another /64: %d, want 202", got)
	}
}

// Orders are limited per address too (orders_per_ip, orders_burst).
func TestHostileOrderFloodIsLimitedPerAddress(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	url, _ := frozenFrontend(t, r)
	burst := capture.DefaultConfig().OrdersBurst
	if capture.DefaultConfig().OrdersPerIP <= 0 {
		t.Fatal("the order limit is off by default")
	}
	order := func(addr string) func() *http.Response {
		return func() *http.Response { return from(t, url+"/orders", addr, httpxtest.JSON, `{"item":7,"quantity":1}`) }
	}
	if got := flood(t, burst+50, order("198.51.100.9")); got != burst {
		t.Fatalf("%d orders accepted from one address, want the burst of %d", got, burst)
	}
	if n := streamLen(t, rc); n != burst {
		t.Fatalf("%d orders queued, want %d", n, burst)
	}
	if got := order("198.51.100.10")().StatusCode; got != http.StatusAccepted {
		t.Fatalf("another address: %d", got)
	}
}

// shopFrontend is a frontend whose catalogue is a fresh database, with the
// order limit off (these tests are about items), and a client of it.
func shopFrontend(t *testing.T, r *launcher.Redis) (string, *postgres.DB) {
	t.Helper()
	url := testenv.PostgresURL(t)
	db := testenv.PostgresClient(t, url)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.Node, cfg.CookieKeys = r.Addr, "node-a", []string{testKey}
	cfg.Postgres.URL, cfg.OrdersPerIP = url, 0
	return serve(t, startServer(t, cfg, capture.Options{})).URL, db
}

func newItem(t *testing.T, db *postgres.DB, name string, quantity int64) surge.Item {
	t.Helper()
	price := surge.Cents(100)
	it, _, err := db.UpsertItem(context.Background(), surge.ItemInput{Name: name, Quantity: quantity, Price: &price})
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// metric reads a counter from a frontend's /metrics.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// Orders for items the catalogue does not have are refused at capture:
// nothing reaches Redis (no entry, no order key kept for a day). A flood of
// one unknown id costs Postgres one query; an item created a moment ago is
// accepted.
func TestHostileOrdersForUnknownItemsAreRefused(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	url, db := shopFrontend(t, r)
	httpxtest.Run(t, url, nil, []httpxtest.Hostile{
		{Name: "JSON order for an unknown item", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":424242,"quantity":1}`, Status: 400},
		{Name: "form order for an unknown item", Path: "/orders", ContentType: httpxtest.Form, Body: "item=424243&quantity=1", Status: 400},
		{Name: "order with an id for an unknown item", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"order_id":"mine","item":424244,"quantity":1}`, Status: 400},
		{Name: "order for the largest item id", Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":9223372036854775807,"quantity":1}`, Status: 400},
	}, redisUntouched(rc))

	// Once the frontend hears NOTIFYs (it forgets its misses when it starts
	// to), a flood of one unknown id costs one query.
	waitListening(t, url)
	before := metric(t, url, "surge_catalog_db_loads_total")
	for i := range 200 {
		if resp := post(t, url+"/orders", httpxtest.JSON, `{"item":777777,"quantity":1}`); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("flood order %d: %d", i, resp.StatusCode)
		}
	}
	if n := metric(t, url, "surge_catalog_db_loads_total") - before; n > 1 {
		t.Fatalf("200 orders for one unknown item cost %v catalogue queries, want at most 1", n)
	}
	redisUntouched(rc)(t)

	// Created just now: its NOTIFY may not have reached the frontend.
	it := newItem(t, db, "Fresh", 5)
	resp := post(t, url+"/orders", httpxtest.JSON, fmt.Sprintf(`{"item":%d,"quantity":1}`, it.ID))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("order for an item created a moment ago: %d", resp.StatusCode)
	}
	if n := streamLen(t, rc); n != 1 {
		t.Fatalf("%d entries queued, want 1", n)
	}
}

// waitListening waits until the frontend's catalogue hears NOTIFYs: then a
// read of the catalogue right after another costs no query.
func waitListening(t *testing.T, url string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		var loads [2]float64
		for i := range loads {
			resp, err := http.Get(url + "/api/items")
			if err != nil {
				return err
			}
			resp.Body.Close()
			loads[i] = metric(t, url, "surge_catalog_db_loads_total")
		}
		if loads[1] != loads[0] {
			return fmt.Errorf("the catalogue is read from Postgres on every request: not listening yet")
		}
		return nil
	})
}

// An order_id is one order: a repeat with the same item and quantity is
// that order again (202), one with another item or quantity is a 409 and
// queues nothing, whoever sends it.
func TestHostileReusedOrderIDWithAnotherPayloadIs409(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"the first order", `{"order_id":"k-10","item":10,"quantity":1}`, 202},
		{"the same order again", `{"order_id":"k-10","item":10,"quantity":1}`, 202},
		{"the same id for another item", `{"order_id":"k-10","item":11,"quantity":1}`, 409},
		{"the same id for another quantity", `{"order_id":"k-10","item":10,"quantity":2}`, 409},
		{"the same order once more", `{"order_id":"k-10","item":10,"quantity":1}`, 202},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := post(t, ts.URL+"/orders", httpxtest.JSON, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.status == http.StatusConflict {
				var e struct{ Error string }
				if json.NewDecoder(resp.Body).Decode(&e); !strings.Contains(e.Error, "k-10") {
					t.Fatalf("409 without a message naming the id: %+v", e)
				}
				return
			}
			var st surge.OrderState
			json.NewDecoder(resp.Body).Decode(&st)
			if st.OrderID != "k-10" || st.Item != 10 || st.Quantity != 1 {
				t.Fatalf("answer %+v, want order k-10 for item 10 × 1", st)
			}
		})
	}
	if n := streamLen(t, rc); n != 1 {
		t.Fatalf("%d entries queued for one order id, want 1", n)
	}
	// The form the shop posts gets the same answer.
	if resp := post(t, ts.URL+"/orders", httpxtest.Form, "order_id=k-10&item=12&quantity=1"); resp.StatusCode != http.StatusConflict {
		t.Fatalf("form repeat with another item: %d, want 409", resp.StatusCode)
	}
}
