package capture_test

// The frontend's handlers on fakes of its Queue and Catalogue: no Redis, no
// Postgres. Each fake records what it was asked, in order.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// fakeQueue appends to nothing; it fails while err is set, and holds the
// keys AppendOnce has taken.
type fakeQueue struct {
	log  *testenv.EventLog
	err  error
	keys map[string]string
	last []any // the fields of the last entry appended
}

func (q *fakeQueue) Append(ctx context.Context, fields []any) (string, error) {
	q.log.Add("append %s", fields[1])
	q.last = fields
	return "1-0", q.err
}

func (q *fakeQueue) AppendOnce(ctx context.Context, key, value string, ttl time.Duration, fields []any) (string, error) {
	q.log.Add("append-once %s", key)
	switch held, ok := q.keys[key]; {
	case ok && held == value:
		return "", redis.ErrDuplicate
	case ok:
		return "", redis.ErrConflict
	}
	q.keys[key] = value
	q.last = fields
	return "1-0", q.err
}

func (q *fakeQueue) Ping(ctx context.Context) error { return q.err }

// fakeCatalogue knows the default polls, the accounts-only poll
// "members", and items 7 and 9.
type fakeCatalogue struct{ log *testenv.EventLog }

func (c *fakeCatalogue) Poll(ctx context.Context, id string) (surge.Poll, bool) {
	c.log.Add("poll %s", id)
	members := surge.Poll{ID: "members", Title: "Members only", Options: []string{"yes", "no"}, AccountsOnly: true}
	for _, p := range append(surge.DefaultPolls(), members) {
		if p.ID == id {
			return p, true
		}
	}
	return surge.Poll{}, false
}

func (c *fakeCatalogue) HasItem(ctx context.Context, id int64) (bool, error) {
	c.log.Add("has-item %d", id)
	return id == 7 || id == 9, nil
}

func (c *fakeCatalogue) ItemsJSON(ctx context.Context) ([]byte, error) {
	c.log.Add("items")
	return []byte(`[{"id":7,"name":"Mug","quantity":3,"price":"12.50"}]`), nil
}

func (c *fakeCatalogue) Item(ctx context.Context, id int64) (surge.Item, bool, error) {
	c.log.Add("item %d", id)
	return surge.Item{ID: 7, Name: "Mug", Quantity: 3, Price: 1250}, id == 7, nil
}

func (c *fakeCatalogue) SearchJSON(ctx context.Context, q surge.ItemQuery) ([]byte, error) {
	c.log.Add("search topic=%q q=%q limit=%d offset=%d", q.Topic, q.Words, q.Limit, q.Offset)
	return []byte(`[]`), nil
}

func (c *fakeCatalogue) Ready() bool { return true }

// fakeFrontend is a frontend on fakes, and their log.
func fakeFrontend(t *testing.T) (*httptest.Server, *fakeQueue, *testenv.EventLog) {
	t.Helper()
	log := &testenv.EventLog{}
	q := &fakeQueue{log: log, keys: map[string]string{}}
	cfg := capture.DefaultConfig()
	cfg.Node, cfg.CookieKeys = "node-a", []string{testKey}
	return serve(t, startServer(t, cfg, capture.Options{Queue: q, Catalogue: &fakeCatalogue{log: log}})), q, log
}

func TestFrontendOnFakes(t *testing.T) {
	ts, q, log := fakeFrontend(t)
	const order = `{"order_id":"k-1","item":7,"quantity":2}`
	const cart = `{"order_id":"c-1","lines":[{"item":7,"quantity":2},{"item":9,"quantity":1}]}`
	for _, step := range []struct {
		path, body string
		status     int
		events     []string // what the fakes were asked, in order
	}{
		{"/vote", `{"poll":"cats-vs-dogs","choice":"cats"}`, 202, []string{"poll cats-vs-dogs", "append vote"}},
		{"/vote", `{"poll":"nope","choice":"cats"}`, 400, []string{"poll nope"}},
		{"/vote", `{"choice":"fish"}`, 400, []string{"poll " + surge.DefaultPollID}},
		{"/orders", order, 202, []string{"has-item 7", "append-once " + redis.OrderKey("k-1")}},
		{"/orders", order, 202, []string{"has-item 7", "append-once " + redis.OrderKey("k-1")}},                                      // a repeat
		{"/orders", `{"order_id":"k-1","item":7,"quantity":3}`, 409, []string{"has-item 7", "append-once " + redis.OrderKey("k-1")}}, // another payload
		{"/orders", `{"item":8,"quantity":1}`, 400, []string{"has-item 8"}},                                                          // an unknown item
		{"/orders", `{"item":7,"quantity":0}`, 400, nil},                                                                             // refused before any lookup
		// A cart: every item is looked up, the id taken with all its lines.
		{"/orders", cart, 202, []string{"has-item 7", "has-item 9", "append-once " + redis.OrderKey("c-1")}},
		{"/orders", `{"order_id":"c-1","lines":[{"item":9,"quantity":1},{"item":7,"quantity":2}]}`, 202, // the same lines, listed in another order
			[]string{"has-item 9", "has-item 7", "append-once " + redis.OrderKey("c-1")}},
		{"/orders", `{"order_id":"c-1","lines":[{"item":7,"quantity":2},{"item":9,"quantity":2}]}`, 409,
			[]string{"has-item 7", "has-item 9", "append-once " + redis.OrderKey("c-1")}},
		{"/orders", `{"order_id":"c-1","item":7,"quantity":2}`, 409, []string{"has-item 7", "append-once " + redis.OrderKey("c-1")}}, // one of its lines alone
		{"/orders", `{"lines":[{"item":7,"quantity":1},{"item":8,"quantity":1},{"item":9,"quantity":1}]}`, 400, []string{"has-item 7", "has-item 8"}},
		{"/orders", `{"lines":[{"item":7,"quantity":1},{"item":7,"quantity":1}]}`, 400, nil}, // an item twice
	} {
		before := len(log.Snapshot())
		resp := post(t, ts.URL+step.path, "application/json", step.body)
		if resp.StatusCode != step.status {
			t.Fatalf("POST %s %s: %d, want %d", step.path, step.body, resp.StatusCode, step.status)
		}
		if got := log.Snapshot()[before:]; !slices.Equal(got, step.events) {
			t.Fatalf("POST %s %s: the fakes were asked %q, want %q", step.path, step.body, got, step.events)
		}
	}

	// The queue down: a vote is a 503, never a 202, and health says so.
	q.err = errors.New("connection refused")
	if resp := post(t, ts.URL+"/vote", "application/json", `{"choice":"cats"}`); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("vote with the queue down: %d, want 503", resp.StatusCode)
	}
	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("health with the queue down: %d, want 503", resp.StatusCode)
	}
}

func TestShopOnFakes(t *testing.T) {
	ts, _, log := fakeFrontend(t)
	resp, err := http.Get(ts.URL + "/api/items")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name":"Mug"`) {
		t.Fatalf("GET /api/items: %d %q", resp.StatusCode, body)
	}
	if got := log.Snapshot(); !slices.Equal(got, []string{"items"}) {
		t.Fatalf("the fakes were asked %q, want the catalogue once", got)
	}
}

// Searches and lookups reach the catalogue only when every parameter is
// valid; a bad one is a 400 naming it, an unknown id a 404.
func TestCatalogueQueriesOnFakes(t *testing.T) {
	ts, _, log := fakeFrontend(t)
	long := strings.Repeat("w", surge.MaxSearchWords+1)
	for _, step := range []struct {
		path   string
		status int
		events []string
	}{
		{"/api/items?topic=Shoes&q=+red++running+shoe+", 200, []string{`search topic="shoes" q="red running shoe" limit=50 offset=0`}},
		{"/api/items?limit=200&offset=10000", 200, []string{`search topic="" q="" limit=200 offset=10000`}},
		{"/api/items?q=", 200, []string{`search topic="" q="" limit=50 offset=0`}},
		{"/api/items?limit=0", 400, nil},
		{"/api/items?limit=201", 400, nil},
		{"/api/items?limit=ten", 400, nil},
		{"/api/items?offset=-1", 400, nil},
		{"/api/items?offset=10001", 400, nil},
		{"/api/items?topic=no+spaces", 400, nil},
		{"/api/items?topic=a&topic=b", 400, nil},
		{"/api/items?q=" + long, 400, nil},
		{"/api/items?q=%FF", 400, nil},
		{"/api/items?q=a%00b", 400, nil},
		{"/api/items?qq=typo", 400, nil},
		{"/api/items/7", 200, []string{"item 7"}},
		{"/api/items/8", 404, []string{"item 8"}},
		{"/api/items/0", 404, nil},
		{"/api/items/-1", 404, nil},
		{"/api/items/mug", 404, nil},
		{"/api/items/99999999999999999999", 404, nil},
	} {
		before := len(log.Snapshot())
		resp, err := http.Get(ts.URL + step.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != step.status || (step.status != 200 && !strings.Contains(string(body), `"error"`)) {
			t.Fatalf("GET %s: %d %s, want %d (JSON error if not 200)", step.path, resp.StatusCode, body, step.status)
		}
		if got := log.Snapshot()[before:]; !slices.Equal(got, step.events) {
			t.Fatalf("GET %s: the catalogue was asked %q, want %q", step.path, got, step.events)
		}
	}
}

// The shop page narrows to a search with ?q= and ?topic=; a bad search is a
// 400 page that says what is wrong, and asks the catalogue nothing more.
func TestShopSearchOnFakes(t *testing.T) {
	ts, _, log := fakeFrontend(t)
	for _, step := range []struct {
		query  string
		status int
		events []string
		want   string
	}{
		{"", 200, []string{"items"}, `id="item-7"`},
		{"?q=+red++mug", 200, []string{"items", `search topic="" q="red mug" limit=200 offset=0`}, "Nothing matches your search."},
		{"?topic=Kitchen", 200, []string{"items", `search topic="kitchen" q="" limit=200 offset=0`}, `id="search-clear"`},
		{"?topic=no+slug", 400, []string{"items"}, `id="search-error"`},
		{"?q=" + strings.Repeat("w", 201), 400, []string{"items"}, `id="search-error"`},
	} {
		before := len(log.Snapshot())
		resp, err := http.Get(ts.URL + "/shop" + step.query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != step.status || !strings.Contains(string(body), step.want) {
			t.Fatalf("GET /shop%s: %d, want %d with %q:\n%s", step.query, resp.StatusCode, step.status, step.want, body)
		}
		if got := log.Snapshot()[before:]; !slices.Equal(got, step.events) {
			t.Fatalf("GET /shop%s: the catalogue was asked %q, want %q", step.query, got, step.events)
		}
	}
}
