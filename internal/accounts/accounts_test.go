package accounts_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/accounts"
	"github.com/surge-vote/surge/internal/accounts/accountstest"
	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

const testKey = "test-cookie-key-0123456789"

// newService is a Service on an in-memory store, with the cheapest bcrypt
// cost, a lockout of 3 failures a minute, and a clock the test moves.
func newService(t *testing.T, tweak func(*accounts.Config)) (*accounts.Service, *accountstest.Store, *testenv.Clock) {
	t.Helper()
	cfg := accounts.DefaultConfig()
	cfg.PasswordCost, cfg.MaxFailures = 4, 3
	if tweak != nil {
		tweak(&cfg)
	}
	store := accountstest.NewStore()
	clock := testenv.NewClock(time.Unix(1_700_000_000, 0))
	proxies, err := httpx.ParseProxies([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := accounts.New(cfg, accounts.Options{Store: store, Keys: [][]byte{[]byte(testKey)}, Proxies: proxies, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, store, clock
}

// serveService mounts the handlers as capture does.
func serveService(t *testing.T, s *accounts.Service) *httptest.Server {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/accounts", s.PostAccount)
	r.POST("/login", s.PostLogin)
	r.POST("/logout", s.PostLogout)
	r.GET("/accounts/me/orders", s.GetMyOrders)
	r.GET("/my-orders", s.GetMyOrdersPage)
	r.GET("/signup", s.GetSignUpPage)
	r.GET("/login", s.GetLoginPage)
	r.GET("/whoami", func(c *gin.Context) {
		id, ok := s.Signed(c.Request)
		c.JSON(200, gin.H{"account": id, "signed": ok})
	})
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	return ts
}

type answer struct {
	status int
	header http.Header
	body   string
	cookie *http.Cookie // the session cookie set, if any
}

func send(t *testing.T, method, url, contentType, body string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	for _, ck := range resp.Cookies() {
		if ck.Name == accounts.CookieName {
			a.cookie = ck
		}
	}
	return a
}

func withCookie(ck *http.Cookie) []string { return []string{"Cookie", ck.Name + "=" + ck.Value} }

const ada = `{"name":"Ada","email":"Ada@Example.com","password":"correct horse battery"}`

func TestSignUp(t *testing.T) {
	s, store, _ := newService(t, nil)
	ts := serveService(t, s)
	long := strings.Repeat("p", accounts.MaxPassword+1)
	for _, tt := range []struct {
		name, body string
		status     int
		fields     []string // the fields a 400 names
	}{
		{"created", ada, 201, nil},
		{"the same email in another case", `{"name":"Ada 2","email":"ada@EXAMPLE.com","password":"another password"}`, 409, []string{"email"}},
		{"short password", `{"name":"Bob","email":"bob@example.com","password":"123456789"}`, 400, []string{"password"}},
		{"password over 72 bytes", `{"name":"Bob","email":"bob@example.com","password":"` + long + `"}`, 400, []string{"password"}},
		{"10 characters in 20 bytes", `{"name":"Bob","email":"bob@example.com","password":"éééééééééé"}`, 201, nil},
		{"bad email", `{"name":"Cy","email":"cy at example.com","password":"long enough pass"}`, 400, []string{"email"}},
		{"display-name email", `{"name":"Cy","email":"Cy <cy@example.com>","password":"long enough pass"}`, 400, []string{"email"}},
		{"everything wrong", `{"name":"  ","email":"","password":""}`, 400, []string{"name", "email", "password"}},
		{"name too long", `{"name":"` + strings.Repeat("n", 101) + `","email":"dd@example.com","password":"long enough pass"}`, 400, []string{"name"}},
		{"control characters in the name", `{"name":"a\u0007b","email":"dd@example.com","password":"long enough pass"}`, 400, []string{"name"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, "POST", ts.URL+"/accounts", "application/json", tt.body)
			if a.status != tt.status {
				t.Fatalf("%d %s, want %d", a.status, a.body, tt.status)
			}
			if strings.Contains(strings.ToLower(a.body), "password") && tt.status == 201 || strings.Contains(a.body, "$2a$") {
				t.Fatalf("the answer shows the password or its hash: %s", a.body)
			}
			var e httpx.ErrorBody
			json.Unmarshal([]byte(a.body), &e)
			for _, f := range tt.fields {
				if e.Fields[f] == "" {
					t.Errorf("the answer %s does not name field %q", a.body, f)
				}
			}
			if len(tt.fields) > 0 && len(e.Fields) != len(tt.fields) {
				t.Errorf("fields %v, want just %v", e.Fields, tt.fields)
			}
		})
	}
	if h := store.Hash("Ada@Example.com"); h == nil || strings.Contains(string(h), "correct horse") {
		t.Fatalf("stored %q: not a hash", h)
	}
}

func TestLoginSessionLogout(t *testing.T) {
	s, store, clock := newService(t, func(c *accounts.Config) { c.SessionLifetime = time.Hour })
	ts := serveService(t, s)
	if a := send(t, "POST", ts.URL+"/accounts", "application/json", ada); a.status != 201 {
		t.Fatalf("sign up: %d %s", a.status, a.body)
	}
	if a := send(t, "GET", ts.URL+"/accounts/me/orders", "", ""); a.status != 401 {
		t.Fatalf("my orders without a session: %d, want 401", a.status)
	}
	// The email in any case logs in; the cookie is HttpOnly, Lax, and Secure
	// when the client came over TLS at a trusted proxy.
	a := send(t, "POST", ts.URL+"/login", "application/json", `{"email":"ADA@example.com","password":"correct horse battery"}`,
		"X-Forwarded-Proto", "https")
	if a.status != 200 || a.cookie == nil {
		t.Fatalf("login: %d %s, cookie %v", a.status, a.body, a.cookie)
	}
	if !a.cookie.HttpOnly || !a.cookie.Secure || a.cookie.SameSite != http.SameSiteLaxMode || a.cookie.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Lax, Path=/", a.cookie)
	}
	if strings.Contains(a.body, "correct horse") || strings.Contains(a.body, "$2a$") {
		t.Fatalf("the login answer shows the password or its hash: %s", a.body)
	}
	if plain := send(t, "POST", ts.URL+"/login", "application/json", `{"email":"ada@example.com","password":"correct horse battery"}`); plain.cookie == nil || plain.cookie.Secure {
		t.Fatalf("a login over plain HTTP got cookie %+v: want one without Secure", plain.cookie)
	}
	session := a.cookie
	store.AddOrder(1, surge.AccountOrder{OrderState: surge.OrderState{OrderID: "o-1", Status: "confirmed", Item: 7, Quantity: 1}})
	store.AddOrder(1, surge.AccountOrder{OrderState: surge.OrderState{OrderID: "o-2", Status: "rejected", Reason: "out_of_stock", Item: 7, Quantity: 9}})
	store.AddOrder(2, surge.AccountOrder{OrderState: surge.OrderState{OrderID: "not-mine", Status: "confirmed", Item: 7, Quantity: 1}})
	orders := send(t, "GET", ts.URL+"/accounts/me/orders?limit=1", "", "", withCookie(session)...)
	if orders.status != 200 || !strings.Contains(orders.body, `"order_id":"o-2"`) || strings.Contains(orders.body, "o-1") {
		t.Fatalf("my orders, first page: %d %s", orders.status, orders.body)
	}
	next := orders.header.Get("Link")
	if !strings.Contains(next, "before=o-2") {
		t.Fatalf("Link %q: want the next page after o-2", next)
	}
	orders = send(t, "GET", ts.URL+"/accounts/me/orders?before=o-2&limit=1", "", "", withCookie(session)...)
	if !strings.Contains(orders.body, `"order_id":"o-1"`) || strings.Contains(orders.body, "not-mine") {
		t.Fatalf("my orders, second page: %d %s", orders.status, orders.body)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "before=%20", "page=2", "limit=1&limit=2"} {
		if a := send(t, "GET", ts.URL+"/accounts/me/orders?"+q, "", "", withCookie(session)...); a.status != 400 {
			t.Errorf("my orders ?%s: %d, want 400", q, a.status)
		}
	}

	// A forged or damaged cookie is no session.
	for _, bad := range []string{session.Value + "x", strings.Replace(session.Value, "s1.1.", "s1.2.", 1), "s1.1.abc.99999999999.sig"} {
		if a := send(t, "GET", ts.URL+"/accounts/me/orders", "", "", "Cookie", accounts.CookieName+"="+bad); a.status != 401 {
			t.Errorf("cookie %q: %d, want 401", bad, a.status)
		}
	}

	// Logout revokes the session in the store: the old cookie, replayed,
	// is refused by the account pages.
	out := send(t, "POST", ts.URL+"/logout", "application/json", "", withCookie(session)...)
	if out.status != 200 || out.cookie == nil || out.cookie.MaxAge >= 0 {
		t.Fatalf("logout: %d, cookie %+v: want it cleared", out.status, out.cookie)
	}
	if a := send(t, "GET", ts.URL+"/accounts/me/orders", "", "", withCookie(session)...); a.status != 401 {
		t.Fatalf("my orders after logout with the old cookie: %d, want 401", a.status)
	}
	if n := store.Sessions(); n != 1 { // the plain-HTTP login's
		t.Fatalf("%d sessions stored after logout, want 1", n)
	}

	// A session ends with its lifetime, in the cookie as in the store.
	a = send(t, "POST", ts.URL+"/login", "application/json", `{"email":"ada@example.com","password":"correct horse battery"}`)
	clock.Advance(time.Hour)
	if w := send(t, "GET", ts.URL+"/whoami", "", "", withCookie(a.cookie)...); !strings.Contains(w.body, `"signed":false`) {
		t.Fatalf("an expired cookie still names its account: %s", w.body)
	}
}

// Wrong credentials get one answer whatever was wrong; past the lockout's
// failures the client is refused, even with the right password, while
// another client logs in.
func TestLoginFailuresAndLockout(t *testing.T) {
	s, _, clock := newService(t, nil)
	ts := serveService(t, s)
	send(t, "POST", ts.URL+"/accounts", "application/json", ada)
	unknown := send(t, "POST", ts.URL+"/login", "application/json", `{"email":"nobody@example.com","password":"correct horse battery"}`)
	wrong := send(t, "POST", ts.URL+"/login", "application/json", `{"email":"ada@example.com","password":"wrong horse battery"}`)
	if unknown.status != 401 || wrong.status != 401 || unknown.body != wrong.body || unknown.cookie != nil || wrong.cookie != nil {
		t.Fatalf("unknown email: %d %s; wrong password: %d %s: want the same 401, no cookie", unknown.status, unknown.body, wrong.status, wrong.body)
	}
	if a := send(t, "POST", ts.URL+"/login", "application/json", `{"email":"ada@example.com","password":"another wrong one"}`); a.status != 401 {
		t.Fatalf("third failure: %d", a.status)
	}
	right := `{"email":"ada@example.com","password":"correct horse battery"}`
	a := send(t, "POST", ts.URL+"/login", "application/json", right)
	if a.status != 429 || a.header.Get("Retry-After") == "" || a.cookie != nil {
		t.Fatalf("the right password after 3 failures: %d %s (Retry-After %q): want 429", a.status, a.body, a.header.Get("Retry-After"))
	}
	if a := send(t, "POST", ts.URL+"/login", "application/json", right, "X-Forwarded-For", "203.0.113.9"); a.status != 200 {
		t.Fatalf("another client during the lockout: %d %s", a.status, a.body)
	}
	clock.Advance(time.Minute)
	if a := send(t, "POST", ts.URL+"/login", "application/json", right); a.status != 200 {
		t.Fatalf("after the lockout: %d %s", a.status, a.body)
	}
}

// With the store down, logins, sign-ups and account pages answer 503
// (never 401 or 500), a login costs the client no lockout failure, and a
// signed cookie still names its account.
func TestStoreDown(t *testing.T) {
	s, store, _ := newService(t, nil)
	ts := serveService(t, s)
	send(t, "POST", ts.URL+"/accounts", "application/json", ada)
	session := send(t, "POST", ts.URL+"/login", "application/json", `{"email":"ada@example.com","password":"correct horse battery"}`).cookie
	store.SetDown(true)
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/accounts", `{"name":"Bob","email":"bob@example.com","password":"long enough pass"}`},
		{"POST", "/login", `{"email":"ada@example.com","password":"correct horse battery"}`},
		{"POST", "/login", `{"email":"ada@example.com","password":"correct horse battery"}`},
		{"POST", "/login", `{"email":"ada@example.com","password":"correct horse battery"}`},
		{"POST", "/login", `{"email":"ada@example.com","password":"correct horse battery"}`},
		{"GET", "/accounts/me/orders", ""},
		{"GET", "/my-orders", ""},
		{"POST", "/logout", ""},
	} {
		a := send(t, r.method, ts.URL+r.path, "application/json", r.body, withCookie(session)...)
		if a.status != 503 {
			t.Errorf("%s %s with the store down: %d %s, want 503", r.method, r.path, a.status, a.body)
		}
	}
	w := send(t, "GET", ts.URL+"/whoami", "", "", withCookie(session)...)
	if !strings.Contains(w.body, `"account":1,"signed":true`) {
		t.Fatalf("with the store down the signed cookie names %s, want account 1", w.body)
	}
	store.SetDown(false)
	if a := send(t, "POST", ts.URL+"/login", "application/json", `{"email":"ada@example.com","password":"correct horse battery"}`); a.status != 200 {
		t.Fatalf("login once the store is back: %d %s (an outage must not lock anyone out)", a.status, a.body)
	}
}

// Browsers post forms: a success moves on, a failure shows the page again
// with the field errors; the pages render.
func TestForms(t *testing.T) {
	s, _, _ := newService(t, nil)
	ts := serveService(t, s)
	html := []string{"Accept", "text/html"}
	form := "application/x-www-form-urlencoded"
	a := send(t, "POST", ts.URL+"/accounts", form, "name=Ada&email=ada%40example.com&password=short", html...)
	if a.status != 400 || !strings.Contains(a.body, `id="password-error"`) || !strings.Contains(a.body, `value="ada@example.com"`) {
		t.Fatalf("bad sign-up form: %d %.400s", a.status, a.body)
	}
	a = send(t, "POST", ts.URL+"/accounts", form, "name=Ada&email=ada%40example.com&password=correct+horse+battery", html...)
	if a.status != 303 || a.header.Get("Location") != "/login?registered=1" {
		t.Fatalf("sign-up form: %d %s", a.status, a.header.Get("Location"))
	}
	a = send(t, "POST", ts.URL+"/login", form, "email=ada%40example.com&password=nope+nope+nope", html...)
	if a.status != 401 || !strings.Contains(a.body, "wrong email or password") {
		t.Fatalf("bad login form: %d %.400s", a.status, a.body)
	}
	a = send(t, "POST", ts.URL+"/login", form, "email=ada%40example.com&password=correct+horse+battery", html...)
	if a.status != 303 || a.header.Get("Location") != "/shop" || a.cookie == nil {
		t.Fatalf("login form: %d %s", a.status, a.header.Get("Location"))
	}
	if p := send(t, "GET", ts.URL+"/my-orders", "", "", html...); p.status != 303 || p.header.Get("Location") != "/login" {
		t.Fatalf("my orders page without a session: %d %s, want a redirect to /login", p.status, p.header.Get("Location"))
	}
	if p := send(t, "GET", ts.URL+"/my-orders", "", "", withCookie(a.cookie)...); p.status != 200 || !strings.Contains(p.body, "No orders yet") {
		t.Fatalf("my orders page: %d %.400s", p.status, p.body)
	}
	for _, page := range []string{"/signup", "/login?registered=1"} {
		if p := send(t, "GET", ts.URL+page, "", ""); p.status != 200 || !strings.Contains(p.body, "<form") {
			t.Fatalf("GET %s: %d %.300s", page, p.status, p.body)
		}
	}
}

// Logins and sign-ups are hashed a few at a time: with every slot taken
// one waits, and a client that gives up gets 503. An unknown email waits
// too: it costs a hash like a known one, so its answer time does not tell
// whether the address is registered.
func TestHashingIsBounded(t *testing.T) {
	s, _, _ := newService(t, func(c *accounts.Config) { c.HashConcurrency = 1 })
	ts := serveService(t, s)
	release := accounts.HoldHashSlots(s)
	defer release()
	for _, body := range []string{
		`{"email":"nobody@example.com","password":"whatever it is"}`,
	} {
		req, _ := http.NewRequest("POST", ts.URL+"/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		client := &http.Client{Timeout: 300 * time.Millisecond}
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("a login for an unknown email was answered (%d %s) while no hash slot was free: it skipped the hash", resp.StatusCode, b)
		}
	}
	release()
	if a := send(t, "POST", ts.URL+"/login", "application/json", `{"email":"nobody@example.com","password":"whatever it is"}`); a.status != 401 {
		t.Fatalf("once a slot is free: %d, want 401", a.status)
	}
	_ = fmt.Sprint
}
