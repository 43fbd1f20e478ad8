package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/accounts"
	"github.com/surge-vote/surge/internal/testenv"
)

// An accounts-only poll through HAProxy: without a session a vote is a
// 401; an account that votes again and again, through both frontends and
// with a fresh voter cookie each time, is one voter whose latest vote
// counts; the session ends at logout.
func TestAccountsOnlyPoll(t *testing.T) {
	c := up(t, 2, 1)
	if status, _ := adminPost(t, c, "/admin/api/polls", map[string]any{"id": "members", "title": "Members?",
		"options": []string{"yes", "no"}, "accounts_only": true}); status != 201 {
		t.Fatalf("create poll: %d", status)
	}
	post := func(client *http.Client, path, body string, session *http.Cookie) (int, string) {
		req, _ := http.NewRequest("POST", c.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if session != nil {
			req.AddCookie(session)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	fresh := func() *http.Client { // a browser with no cookies
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: testenv.RequestBound}
	}
	login := func(email string) *http.Cookie {
		t.Helper()
		if status, body := post(fresh(), "/accounts", fmt.Sprintf(`{"name":"x","email":%q,"password":"a long enough password"}`, email), nil); status != 201 {
			t.Fatalf("sign up %s: %d %s", email, status, body)
		}
		req, _ := http.NewRequest("POST", c.URL+"/login", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":"a long enough password"}`, email)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := fresh().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == accounts.CookieName {
				return ck
			}
		}
		t.Fatalf("login %s: %d, no session cookie", email, resp.StatusCode)
		return nil
	}
	ada, bob := login("ada@example.com"), login("bob@example.com")

	// Every frontend knows the poll once its NOTIFY arrived; until then a
	// vote is a 400 (unknown poll). Without a session: 401.
	testenv.Eventually(t, resultsLag, func() error {
		for range 2 * len(c.Web) {
			if status, body := post(fresh(), "/vote", `{"poll":"members","choice":"yes"}`, nil); status != 401 {
				return fmt.Errorf("vote without a session: %d %s", status, body)
			}
		}
		return nil
	})
	// Ada votes 6 times through the round robin, each from a fresh
	// browser: one voter, her last choice counts. Bob votes once.
	for i, choice := range []string{"yes", "no", "yes", "no", "yes", "no"} {
		if status, body := post(fresh(), "/vote", `{"poll":"members","choice":"`+choice+`"}`, ada); status != 202 {
			t.Fatalf("ada's vote %d: %d %s", i, status, body)
		}
	}
	if status, body := post(fresh(), "/vote", `{"poll":"members","choice":"yes"}`, bob); status != 202 {
		t.Fatalf("bob's vote: %d %s", status, body)
	}
	waitDrained(t, c)
	testenv.Eventually(t, resultsLag, func() error {
		tl := export(t, c, "members")
		if tl.Counts["yes"] != 1 || tl.Counts["no"] != 1 {
			return fmt.Errorf("counts %v, want yes 1 (bob), no 1 (ada's last)", tl.Counts)
		}
		return nil
	})

	// Logged out, the old cookie no longer votes.
	if status, body := post(fresh(), "/logout", "", ada); status != 200 {
		t.Fatalf("logout: %d %s", status, body)
	}
	for range 2 * len(c.Web) {
		if status, body := post(fresh(), "/vote", `{"poll":"members","choice":"yes"}`, ada); status != 401 {
			t.Fatalf("vote with a logged-out session: %d %s", status, body)
		}
	}
}
