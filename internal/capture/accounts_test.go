package capture_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/accounts"
	"github.com/surge-vote/surge/internal/accounts/accountstest"
	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/httpx/httpxtest"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// accountsFrontend is a frontend on fakes with accounts on an in-memory
// store, which the test can take down.
func accountsFrontend(t *testing.T, tweak ...func(*capture.Config)) (base string, q *fakeQueue, store *accountstest.Store) {
	t.Helper()
	log := &testenv.EventLog{}
	q = &fakeQueue{log: log, keys: map[string]string{}}
	store = accountstest.NewStore()
	acfg := accounts.DefaultConfig()
	acfg.PasswordCost = 4
	accts, err := accounts.New(acfg, accounts.Options{Store: store, Keys: [][]byte{[]byte(testKey)}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := capture.DefaultConfig()
	cfg.Node, cfg.CookieKeys = "node-a", []string{testKey}
	for _, f := range tweak {
		f(&cfg)
	}
	ts := serve(t, startServer(t, cfg, capture.Options{Queue: q, Catalogue: &fakeCatalogue{log: log}, Accounts: accts}))
	return ts.URL, q, store
}

// field is the value of name among an entry's fields, "" if absent.
func field(fields []any, name string) string {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == name {
			return fmt.Sprint(fields[i+1])
		}
	}
	return ""
}

func login(t *testing.T, base string) *http.Cookie {
	t.Helper()
	if resp := post(t, base+"/accounts", "application/json", `{"name":"Ada","email":"ada@example.com","password":"correct horse battery"}`); resp.StatusCode != 201 {
		t.Fatalf("sign up: %d", resp.StatusCode)
	}
	resp := post(t, base+"/login", "application/json", `{"email":"ada@example.com","password":"correct horse battery"}`)
	for _, ck := range resp.Cookies() {
		if ck.Name == accounts.CookieName {
			return ck
		}
	}
	t.Fatalf("login: %d, no session cookie", resp.StatusCode)
	return nil
}

// An accounts-only poll takes votes from sessions only, one voter per
// account whatever voter cookie the browser holds; orders placed while
// logged in carry the account, others none.
func TestAccountsOnFrontend(t *testing.T) {
	base, q, _ := accountsFrontend(t)
	vote := `{"poll":"members","choice":"yes"}`
	if resp := post(t, base+"/vote", "application/json", vote); resp.StatusCode != 401 {
		t.Fatalf("accounts-only vote without a session: %d, want 401", resp.StatusCode)
	}
	if q.last != nil {
		t.Fatalf("a refused vote was queued: %v", q.last)
	}
	session := login(t, base)
	cookieVoter := voterCookie(post(t, base+"/vote", "application/json", `{"choice":"cats"}`))
	for _, cookies := range [][]*http.Cookie{{session}, {session, cookieVoter}} {
		resp := post(t, base+"/vote", "application/json", vote, cookies...)
		if resp.StatusCode != 202 {
			t.Fatalf("accounts-only vote with a session: %d", resp.StatusCode)
		}
		if got := field(q.last, surge.FieldVoter); got != surge.AccountVoter(1) {
			t.Fatalf("voter %q, want %q whatever the voter cookie", got, surge.AccountVoter(1))
		}
		if voterCookie(resp) != nil {
			t.Fatal("an accounts-only vote set a voter cookie")
		}
	}
	// A cookie poll is unchanged by a session.
	post(t, base+"/vote", "application/json", `{"choice":"dogs"}`, session)
	if got := field(q.last, surge.FieldVoter); strings.HasPrefix(got, "acct-") {
		t.Fatalf("a cookie poll's vote went to voter %q", got)
	}

	post(t, base+"/orders", "application/json", `{"order_id":"mine","item":7,"quantity":1}`, session)
	if got := field(q.last, surge.FieldAccount); got != "1" {
		t.Fatalf("a logged-in order carries account %q, want 1", got)
	}
	post(t, base+"/orders", "application/json", `{"order_id":"anon","item":7,"quantity":1}`)
	if slices.Contains(q.last, any(surge.FieldAccount)) {
		t.Fatalf("an anonymous order carries an account: %v", q.last)
	}
}

// With the accounts store down, cookie votes, the catalogue and orders
// (anonymous or logged in) still work; only the account pages and
// accounts-only polls answer 503.
func TestAccountsStoreDown(t *testing.T) {
	base, q, store := accountsFrontend(t)
	session := login(t, base)
	store.SetDown(true)
	calls := store.Calls
	for _, r := range []struct {
		method, path, body string
		cookie             *http.Cookie
		status             int
	}{
		{"POST", "/vote", `{"choice":"cats"}`, nil, 202},
		{"POST", "/vote", `{"choice":"cats"}`, session, 202},
		{"GET", "/api/items", "", nil, 200},
		{"GET", "/shop", "", session, 200},
		{"POST", "/orders", `{"item":7,"quantity":1}`, nil, 202},
		{"POST", "/orders", `{"order_id":"while-down","item":7,"quantity":1}`, session, 202},
	} {
		if got := do(t, base, r.method, r.path, r.body, r.cookie); got != r.status {
			t.Errorf("%s %s with the accounts store down: %d, want %d", r.method, r.path, got, r.status)
		}
	}
	if store.Calls != calls {
		t.Errorf("votes, the catalogue and orders called the accounts store %d times", store.Calls-calls)
	}
	if got := field(q.last, surge.FieldAccount); got != "1" {
		t.Errorf("the order placed while the store was down carries account %q, want 1", got)
	}
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/vote", `{"poll":"members","choice":"yes"}`},
		{"GET", "/accounts/me/orders", ""},
		{"GET", "/my-orders", ""},
		{"POST", "/login", `{"email":"ada@example.com","password":"correct horse battery"}`},
		{"POST", "/accounts", `{"name":"Bob","email":"bob@example.com","password":"long enough pass"}`},
	} {
		if got := do(t, base, r.method, r.path, r.body, session); got != 503 {
			t.Errorf("%s %s with the accounts store down: %d, want 503", r.method, r.path, got)
		}
	}
}

func do(t *testing.T, base, method, path, body string, ck *http.Cookie) int {
	t.Helper()
	if method == "POST" {
		var cookies []*http.Cookie
		if ck != nil {
			cookies = append(cookies, ck)
		}
		return post(t, base+path, "application/json", body, cookies...).StatusCode
	}
	req, _ := http.NewRequest(method, base+path, nil)
	if ck != nil {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Without accounts (no postgres.url), their routes and accounts-only
// polls answer 503 and nothing else changes.
func TestNoAccounts(t *testing.T) {
	ts, _, _ := fakeFrontend(t)
	for _, p := range []string{"/accounts", "/login", "/logout"} {
		if got := do(t, ts.URL, "POST", p, `{}`, nil); got != 503 {
			t.Errorf("POST %s without accounts: %d, want 503", p, got)
		}
	}
	if got := do(t, ts.URL, "POST", "/vote", `{"poll":"members","choice":"yes"}`, nil); got != 503 {
		t.Errorf("accounts-only vote without accounts: %d, want 503", got)
	}
}

// Sign-ups from one address are limited (each costs a hash and a row);
// another address passes.
func TestSignUpFloodIsLimited(t *testing.T) {
	base, _, store := accountsFrontend(t, func(c *capture.Config) { c.SignUpsPerIP, c.SignUpsBurst = 1, 3 })
	signUp := func(addr string, i int) *http.Response {
		return from(t, base+"/accounts", addr, "application/json",
			fmt.Sprintf(`{"name":"n","email":"u%d@example.com","password":"long enough pass"}`, i))
	}
	limited := 0
	for i := range 10 {
		switch resp := signUp("203.0.113.7", i); resp.StatusCode {
		case 201:
		case 429:
			limited++
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		default:
			t.Fatalf("sign-up %d: %d", i, resp.StatusCode)
		}
	}
	if limited < 6 {
		t.Fatalf("%d of 10 sign-ups from one address limited, want at least 6 past a burst of 3", limited)
	}
	calls := store.Calls
	if resp := signUp("198.51.100.9", 100); resp.StatusCode != 201 {
		t.Fatalf("another address during the flood: %d", resp.StatusCode)
	}
	if store.Calls != calls+1 {
		t.Fatalf("the refused sign-ups reached the store")
	}
}

// Another site's page cannot sign its visitors up, log them in (login
// CSRF) or out: 403, and the accounts store is never asked.
func TestCrossSiteAccountPostsAreRefused(t *testing.T) {
	base, _, store := accountsFrontend(t)
	crossSite := []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}
	httpxtest.Run(t, base, nil, []httpxtest.Hostile{
		{Name: "hidden form sign-up", Path: "/accounts", ContentType: httpxtest.Form,
			Body: "name=x&email=x%40example.com&password=long+enough+pass", Header: crossSite, Status: 403},
		{Name: "hidden form login", Path: "/login", ContentType: httpxtest.Form,
			Body: "email=x%40example.com&password=long+enough+pass", Header: crossSite, Status: 403},
		{Name: "hidden form logout", Path: "/logout", ContentType: httpxtest.Form, Header: crossSite, Status: 403},
		{Name: "JSON login from an old browser (Origin only)", Path: "/login", ContentType: httpxtest.JSON,
			Body: `{"email":"x@example.com","password":"long enough pass"}`, Header: []string{"Origin", "https://evil.example"}, Status: 403},
	}, func(t *testing.T) {
		if store.Calls != 0 {
			t.Fatalf("a cross-site post asked the accounts store %d times", store.Calls)
		}
	})
}
