package admin_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/surge-vote/surge/internal/admin"
	"github.com/surge-vote/surge/internal/testenv"
)

// The admin lockout counts the address HAProxy saw, never one the client
// wrote. The test client reaches the server from loopback, a trusted proxy
// address, as HAProxy does; each request's last X-Forwarded-For line is what
// HAProxy would append (the client's real address), and anything before it
// is forged. Real clients on loopback or the proxy's network are where a
// forged entry used to be believed.
func TestAdminLockoutIgnoresForgedForwardedFor(t *testing.T) {
	url := testenv.PostgresURL(t)
	cfg := adminConfig(url)
	cfg.AdminMaxFails = 5
	ts := serveAdmin(t, cfg, admin.Options{})

	get := func(password string, xff ...string) int {
		t.Helper()
		status, _ := adminGet(t, ts.URL, password, xff...)
		return status
	}
	fail := func(n int, forge func(i int) []string) {
		t.Helper()
		for i := range n {
			if s := get("wrong-guess", forge(i)...); s != http.StatusUnauthorized && s != http.StatusTooManyRequests {
				t.Fatalf("wrong password %d: %d", i, s)
			}
		}
	}

	t.Run("a forged address after the lockout is still locked out", func(t *testing.T) {
		real := "127.0.0.4"
		fail(5, func(int) []string { return []string{real} })
		for _, forged := range [][]string{{"1.2.3.4", real}, {"1.2.3.4, " + real}, {"1.2.3.4, 10.0.0.1", real}} {
			if s := get(adminPassword, forged...); s != http.StatusTooManyRequests {
				t.Fatalf("right password with X-Forwarded-For %q: %d, want 429", forged, s)
			}
		}
	})
	t.Run("a new forged address per guess is still locked out", func(t *testing.T) {
		real := "10.20.30.40" // a client on the proxy's private network
		fail(20, func(i int) []string { return []string{fmt.Sprintf("203.0.113.%d", i), real} })
		if s := get(adminPassword, "203.0.113.250", real); s != http.StatusTooManyRequests {
			t.Fatalf("right password after 20 guesses under forged addresses: %d, want 429", s)
		}
	})
	t.Run("nobody can lock out a chosen address", func(t *testing.T) {
		victim, attacker := "198.51.100.50", "127.0.0.6"
		fail(10, func(int) []string { return []string{victim, attacker} })
		if s := get(adminPassword, victim); s != http.StatusOK {
			t.Fatalf("the victim got %d after an attacker forged its address, want 200", s)
		}
	})
}

// Straight from a client (no trusted proxy in between), the connection's
// peer is the client, whatever it writes.
func TestAdminLockoutWithoutProxyCountsThePeer(t *testing.T) {
	url := testenv.PostgresURL(t)
	cfg := adminConfig(url)
	cfg.AdminMaxFails, cfg.TrustedProxies = 5, []string{"192.0.2.1/32"} // not the test client
	ts := serveAdmin(t, cfg, admin.Options{})
	for i := range 8 {
		resp, _ := adminDo(t, ts, http.MethodGet, "/admin/api/items", "", "", false, "Authorization", "Basic YWRtaW46d3Jvbmc=",
			"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := adminDo(t, ts, http.MethodGet, "/admin/api/items", "", "", true, "X-Forwarded-For", "203.0.113.99"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right password after 8 guesses: %d, want 429", resp.StatusCode)
	}
}

// adminGet lists the catalogue with the admin user and password, sending
// each xff as its own X-Forwarded-For line; it returns the status and the
// Retry-After header.
func adminGet(t *testing.T, base, password string, xff ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/admin/api/items", nil)
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}
