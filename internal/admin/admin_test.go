package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/admin"
	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/testenv"
)

const adminPassword = "admin-password-123"

func newAdmin(t *testing.T, mutate ...func(*admin.Config)) (*httptest.Server, *postgres.DB) {
	t.Helper()
	return newAdminOn(t, testenv.PostgresURL(t), mutate...)
}

func newAdminOn(t *testing.T, url string, mutate ...func(*admin.Config)) (*httptest.Server, *postgres.DB) {
	t.Helper()
	cfg := adminConfig(url)
	for _, m := range mutate {
		m(&cfg)
	}
	return serveAdmin(t, cfg, admin.Options{}), testenv.PostgresClient(t, url)
}

// adminConfig is the admin service on the database at url.
func adminConfig(url string) admin.Config {
	cfg := admin.DefaultConfig()
	cfg.Postgres.URL, cfg.AdminPassword, cfg.Node = url, adminPassword, "admin-1"
	return cfg
}

// startServer builds an admin server that the test closes.
func startServer(tb testing.TB, cfg admin.Config, opt admin.Options) *admin.Server {
	tb.Helper()
	s, err := admin.New(context.Background(), cfg, opt)
	return testenv.Started(tb, s, err)
}

// serveAdmin runs an admin server over HTTP until the test ends (closed
// before the server).
func serveAdmin(tb testing.TB, cfg admin.Config, opt admin.Options) *httptest.Server {
	ts := httptest.NewServer(startServer(tb, cfg, opt).Handler())
	tb.Cleanup(ts.Close)
	return ts
}

// asAdmin signs a request with the admin's credentials.
func asAdmin(r *http.Request) { r.SetBasicAuth("admin", adminPassword) }

func adminDo(t *testing.T, ts *httptest.Server, method, path, contentType, body string, auth bool, headers ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth {
		asAdmin(req)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func itemCount(t *testing.T, db *postgres.DB) int {
	items, err := db.Items(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}

func TestAdminAddsThenRestocks(t *testing.T) {
	ts, db := newAdmin(t)
	resp, item := adminDo(t, ts, "POST", "/admin/api/items", "application/json", `{"name":"Mug","quantity":3,"price":"12.50"}`, true)
	if resp.StatusCode != http.StatusCreated || item["quantity"] != 3.0 || item["price"] != "12.50" || item["name"] != "Mug" {
		t.Fatalf("new item: %d %v", resp.StatusCode, item)
	}
	// Same name, other case and spaces: a restock. No price: price kept.
	resp, item = adminDo(t, ts, "POST", "/admin/api/items", "application/json", `{"name":"  mUG ","quantity":2}`, true)
	if resp.StatusCode != http.StatusOK || item["quantity"] != 5.0 || item["price"] != "12.50" || item["name"] != "Mug" {
		t.Fatalf("restock: %d %v", resp.StatusCode, item)
	}
	// A price given with a restock replaces it; a number works too.
	resp, item = adminDo(t, ts, "POST", "/admin/api/items", "application/x-www-form-urlencoded", "name=mug&quantity=0&price=9.9", true)
	if resp.StatusCode != http.StatusOK || item["quantity"] != 5.0 || item["price"] != "9.90" {
		t.Fatalf("price change: %d %v", resp.StatusCode, item)
	}
	if n := itemCount(t, db); n != 1 {
		t.Fatalf("%d items, want 1", n)
	}
}

func TestAdminConcurrentRestocksAllCount(t *testing.T) {
	ts, db := newAdmin(t)
	adminDo(t, ts, "POST", "/admin/api/items", "application/json", `{"name":"Cap","quantity":0,"price":"5"}`, true)
	var wg sync.WaitGroup
	statuses := make(chan int, 40)
	for range 40 {
		wg.Go(func() {
			resp, _ := adminDo(t, ts, "POST", "/admin/api/items", "application/json", `{"name":"cap","quantity":5}`, true)
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("restock status %d", s)
		}
	}
	items, _ := db.Items(context.Background())
	if len(items) != 1 || items[0].Quantity != 200 {
		t.Fatalf("items %+v, want one with 200", items)
	}
}

func TestAdminConcurrentCreatesMakeOneItem(t *testing.T) {
	ts, db := newAdmin(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 20 {
		wg.Go(func() {
			resp, _ := adminDo(t, ts, "POST", "/admin/api/items", "application/json", `{"name":"Hat","quantity":1,"price":"1.00"}`, true)
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case http.StatusCreated:
				created++
			case http.StatusOK:
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	items, _ := db.Items(context.Background())
	if created != 1 || len(items) != 1 || items[0].Quantity != 20 {
		t.Fatalf("created %d times, items %+v; want one 201 and quantity 20", created, items)
	}
}

func TestAdminValidation(t *testing.T) {
	ts, db := newAdmin(t)
	tests := []struct {
		name, body string
		fields     []string
	}{
		{"empty name", `{"name":"   ","quantity":1,"price":"1"}`, []string{"name"}},
		{"name too long", `{"name":"` + strings.Repeat("x", 101) + `","quantity":1,"price":"1"}`, []string{"name"}},
		{"unprintable name", `{"name":"bad\u0007bell","quantity":1,"price":"1"}`, []string{"name"}},
		{"missing quantity", `{"name":"A","price":"1"}`, []string{"quantity"}},
		{"negative quantity", `{"name":"A","quantity":-1,"price":"1"}`, []string{"quantity"}},
		{"fractional quantity", `{"name":"A","quantity":1.5,"price":"1"}`, []string{"quantity"}},
		{"huge quantity", `{"name":"A","quantity":1000001,"price":"1"}`, []string{"quantity"}},
		{"quantity as text", `{"name":"A","quantity":"5","price":"1"}`, []string{"quantity"}},
		{"quantity overflow", `{"name":"A","quantity":99999999999999999999999,"price":"1"}`, []string{"quantity"}},
		{"three decimals", `{"name":"A","quantity":1,"price":"1.234"}`, []string{"price"}},
		{"negative price", `{"name":"A","quantity":1,"price":"-1"}`, []string{"price"}},
		{"price too high", `{"name":"A","quantity":1,"price":"1000000.01"}`, []string{"price"}},
		{"price not a number", `{"name":"A","quantity":1,"price":"abc"}`, []string{"price"}},
		{"price exponent", `{"name":"A","quantity":1,"price":1e3}`, []string{"price"}},
		{"new item without price", `{"name":"A","quantity":1}`, []string{"price"}},
		{"everything wrong", `{"name":"","quantity":-5,"price":"x"}`, []string{"name", "quantity", "price"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := adminDo(t, ts, "POST", "/admin/api/items", "application/json", tt.body, true)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d: %v", resp.StatusCode, out)
			}
			fields, _ := out["fields"].(map[string]any)
			for _, f := range tt.fields {
				if msg, _ := fields[f].(string); msg == "" {
					t.Errorf("no message for %s: %v", f, out)
				}
			}
			if len(fields) != len(tt.fields) {
				t.Errorf("fields %v, want exactly %v", fields, tt.fields)
			}
		})
	}
	for _, bad := range []string{`{"name":"A","quantity":1,"price":"1","extra":1}`, `{"name":`, `[]`} {
		if resp, _ := adminDo(t, ts, "POST", "/admin/api/items", "application/json", bad, true); resp.StatusCode != 400 {
			t.Errorf("%s: status %d", bad, resp.StatusCode)
		}
	}
	if n := itemCount(t, db); n != 0 {
		t.Fatalf("%d items written by invalid requests", n)
	}
}

func TestAdminRequiresCredentials(t *testing.T) {
	// Many failures from one address here; the lockout has its own test.
	ts, db := newAdmin(t, func(c *admin.Config) { c.AdminMaxFails = 100 })
	body := `{"name":"Mug","quantity":3,"price":"12.50"}`
	for _, tt := range []struct {
		name    string
		auth    bool
		headers []string
	}{
		{"none", false, nil},
		{"wrong password", false, []string{"Authorization", "Basic YWRtaW46d3Jvbmc="}},             // admin:wrong
		{"wrong user", false, []string{"Authorization", "Basic cm9vdDphZG1pbi1wYXNzd29yZC0xMjM="}}, // root:admin-password-123
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/admin", "/admin/api/items"} {
				resp, _ := adminDo(t, ts, "GET", path, "", "", tt.auth, tt.headers...)
				if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("GET %s: %d", path, resp.StatusCode)
				}
			}
			resp, _ := adminDo(t, ts, "POST", "/admin/api/items", "application/json", body, tt.auth, tt.headers...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("POST: %d", resp.StatusCode)
			}
		})
	}
	if n := itemCount(t, db); n != 0 {
		t.Fatalf("%d items written without credentials", n)
	}
	if resp, _ := adminDo(t, ts, "GET", "/admin", "", "", true); resp.StatusCode != 200 {
		t.Fatalf("GET /admin with credentials: %d", resp.StatusCode)
	}
}

func TestAdminRefusesCrossOriginForms(t *testing.T) {
	ts, db := newAdmin(t)
	resp, _ := adminDo(t, ts, "POST", "/admin/api/items", "application/x-www-form-urlencoded", "name=Mug&quantity=1&price=1", true,
		"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin form post: %d, want 403", resp.StatusCode)
	}
	if n := itemCount(t, db); n != 0 {
		t.Fatal("cross-origin post wrote an item")
	}
}

func TestAdminCreatesPollsThatFrontendsAccept(t *testing.T) {
	url := testenv.PostgresURL(t)
	ts, _ := newAdminOn(t, url)
	front := frontend(t, url)
	vote := func() int {
		resp, err := http.Post(front.URL+"/vote", "application/json", strings.NewReader(`{"poll":"tea-or-coffee","choice":"tea"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := vote(); s != http.StatusBadRequest {
		t.Fatalf("vote for a poll that does not exist yet: %d", s)
	}
	for _, tt := range []struct {
		body   string
		status int
	}{
		{`{"id":"tea-or-coffee","title":"Tea or coffee?","options":["tea","coffee"]}`, 201},
		{`{"id":"tea-or-coffee","title":"again","options":["tea","coffee"]}`, 409},
		{`{"id":"one","title":"One","options":["only"]}`, 400},
		{`{"id":"many","title":"Many","options":["a","b","c","d","e","f","g","h","i","j","k"]}`, 400},
		{`{"id":"Bad Id","title":"x","options":["a","b"]}`, 400},
	} {
		if resp, out := adminDo(t, ts, "POST", "/admin/api/polls", "application/json", tt.body, true); resp.StatusCode != tt.status {
			t.Fatalf("%s: %d %v", tt.body, resp.StatusCode, out)
		}
	}
	// A form with comma-separated options works too.
	resp, out := adminDo(t, ts, "POST", "/admin/api/polls", "application/x-www-form-urlencoded", "id=fruit&title=Fruit&options=apple,+pear,+plum", true)
	if resp.StatusCode != 201 {
		t.Fatalf("form poll: %d %v", resp.StatusCode, out)
	}
	// The frontend learns of the new poll through NOTIFY, with no restart.
	// A NOTIFY and one reload of the polls.
	testenv.Eventually(t, 10*time.Second, func() error {
		if s := vote(); s != http.StatusAccepted {
			return fmt.Errorf("frontend answers %d to a vote for the new poll, want 202", s)
		}
		return nil
	})
}

// frontend is a public frontend (package capture) whose polls come from the
// database at url.
func frontend(t *testing.T, url string) *httptest.Server {
	t.Helper()
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.Postgres.URL = testenv.Redis(t).Addr, url
	cfg.Node, cfg.CookieKeys = "node-a", []string{"test-cookie-key-0123456789"}
	s, err := capture.New(context.Background(), cfg, capture.Options{})
	ts := httptest.NewServer(testenv.Started(t, s, err).Handler())
	t.Cleanup(ts.Close)
	return ts
}
