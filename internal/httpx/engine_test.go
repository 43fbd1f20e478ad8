package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/telemetry"
	"github.com/surge-vote/surge/internal/testenv"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParseProxies([]string{"127.0.0.0/8", "::1/128", "10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		peer string
		xff  []string // header lines, in order
		want string
	}{
		{"direct client", "203.0.113.9:5555", nil, "203.0.113.9"},
		{"direct client writing XFF", "203.0.113.9:5555", []string{"1.2.3.4"}, "203.0.113.9"},
		{"proxy without XFF", "127.0.0.1:4000", nil, "127.0.0.1"},
		{"proxy appended the client", "127.0.0.1:4000", []string{"198.51.100.2"}, "198.51.100.2"},
		{"client wrote one, proxy appended a line", "127.0.0.1:4000", []string{"1.2.3.4", "198.51.100.2"}, "198.51.100.2"},
		{"client wrote one, proxy appended to it", "127.0.0.1:4000", []string{"1.2.3.4, 198.51.100.2"}, "198.51.100.2"},
		// The bypass: a client on loopback (or the proxy's network) looks
		// trusted; what it wrote further left must not be taken.
		{"client on a trusted address wrote one", "127.0.0.1:4000", []string{"1.2.3.4, 127.0.0.4"}, "127.0.0.4"},
		{"client wrote a chain of trusted-looking hops", "127.0.0.1:4000", []string{"1.2.3.4, 10.0.0.7", "127.0.0.5"}, "127.0.0.5"},
		{"single trusted address", "10.0.0.7:80", []string{"192.0.2.1"}, "192.0.2.1"},
		{"neighbour of a single trusted address", "10.0.0.8:80", []string{"192.0.2.1"}, "10.0.0.8"},
		{"garbage last entry", "127.0.0.1:4000", []string{"1.2.3.4, not-an-ip"}, "127.0.0.1"},
		{"empty last entry", "127.0.0.1:4000", []string{"1.2.3.4,"}, "127.0.0.1"},
		{"IPv6 proxy and client", "[::1]:4000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv4-mapped peer", "[::ffff:127.0.0.1]:4000", []string{"192.0.2.3"}, "192.0.2.3"},
		{"mapped client is plain IPv4", "127.0.0.1:4000", []string{"::ffff:192.0.2.3"}, "192.0.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, trusted); got != tt.want {
				t.Fatalf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseProxiesRefusesGarbage(t *testing.T) {
	for _, bad := range []string{"", "10.0.0.0/33", "localhost", "10.0.0.0/8/1"} {
		if _, err := ParseProxies([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func testEngine(t *testing.T, health func(context.Context) error, logs *testenv.LogBuffer) *gin.Engine {
	t.Helper()
	r, err := NewEngine(EngineOptions{Service: "t", Node: "n1", Log: slog.New(slog.NewJSONHandler(logs, nil)),
		Registry: telemetry.NewRegistry(), TrustedProxies: []string{"127.0.0.0/8"}, Health: health})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Gin's c.ClientIP() gives the same answer as ClientIP, whatever the client
// writes, including the header the engine uses to tell Gin.
func TestEngineClientIPAgrees(t *testing.T) {
	r := testEngine(t, nil, &testenv.LogBuffer{})
	r.GET("/ip", func(c *gin.Context) { c.String(http.StatusOK, c.ClientIP()) })
	tests := []struct {
		peer    string
		headers map[string]string
		want    string
	}{
		{"127.0.0.1:1", map[string]string{"X-Forwarded-For": "1.2.3.4, 127.0.0.9"}, "127.0.0.9"},
		{"127.0.0.1:1", map[string]string{"X-Forwarded-For": "198.51.100.7"}, "198.51.100.7"},
		{"203.0.113.1:1", map[string]string{"X-Forwarded-For": "1.2.3.4"}, "203.0.113.1"},
		{"203.0.113.1:1", map[string]string{clientIPHeader: "1.2.3.4"}, "203.0.113.1"},
		{"127.0.0.1:1", map[string]string{clientIPHeader: "1.2.3.4", "X-Real-Ip": "1.2.3.5"}, "127.0.0.1"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, "/ip", nil)
		req.RemoteAddr = tt.peer
		for k, v := range tt.headers {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Body.String() != tt.want {
			t.Errorf("peer %s, %v: c.ClientIP() = %q, want %q", tt.peer, tt.headers, w.Body.String(), tt.want)
		}
	}
}

// Every answer (pages, API, errors, assets, health) carries the CSP, a
// refusal to be framed, and nosniff; the asset folder is not listed.
func TestEngineSecurityHeadersAndNoListing(t *testing.T) {
	r := testEngine(t, nil, &testenv.LogBuffer{})
	r.GET("/page", func(c *gin.Context) { c.Data(http.StatusOK, "text/html; charset=utf-8", []byte("<p>hi</p>")) })
	r.GET("/panic", func(c *gin.Context) { panic("boom") })
	cop := CrossOriginProtection(r)
	tests := []struct {
		method, path string
		headers      map[string]string
		status       int
	}{
		{"GET", "/page", nil, 200},
		{"GET", "/healthz", nil, 200},
		{"GET", "/metrics", nil, 200},
		{"GET", "/static/style.css", nil, 200},
		{"GET", "/static/", nil, 404},
		{"GET", "/static/results.js/", nil, 404},
		{"GET", "/nope", nil, 404},
		{"POST", "/page", nil, 405},
		{"GET", "/panic", nil, 500},
		{"POST", "/page", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		for k, v := range tt.headers {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		cop.ServeHTTP(w, req)
		if w.Code != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, w.Code, tt.status)
		}
		h := w.Header()
		if h.Get("Content-Security-Policy") != ContentSecurityPolicy || h.Get("X-Frame-Options") != "DENY" ||
			h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: security headers missing: %v", tt.method, tt.path, h)
		}
		if tt.path == "/static/" && strings.Contains(w.Body.String(), "style.css") {
			t.Errorf("/static/ lists its folder: %s", w.Body)
		}
	}
	for _, d := range []string{"frame-ancestors 'none'", "default-src 'self'", "object-src 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, d) {
			t.Errorf("CSP lacks %q", d)
		}
	}
}

// /healthz names the dependency that is down and nothing more; the detail
// (addresses, the driver's message) goes to the log.
func TestHealthNamesTheDependencyOnly(t *testing.T) {
	detail := "dial tcp 10.0.3.7:6379: connect: connection refused"
	down, degraded := Down("postgres", errors.New(detail)), Degraded("shard 2", errors.New(detail))
	tests := []struct {
		name     string
		err      error
		code     int
		status   string
		failing  string // "" where the answer must not carry it
		degraded string
	}{
		{"named", Down("redis", errors.New(detail)), 503, "unavailable", "redis", ""},
		{"named and wrapped", errors.Join(errors.New("x"), down), 503, "unavailable", "postgres", ""},
		{"several", errors.Join(down, nil, Down("shard 2", errors.New(detail))), 503, "unavailable", "postgres, shard 2", ""},
		{"unnamed", errors.New(detail), 503, "unavailable", "unknown", ""},
		// A degraded dependency alone keeps the service healthy, named.
		{"degraded only", errors.Join(nil, degraded), 200, "degraded", "", "shard 2"},
		{"down and degraded", errors.Join(down, degraded), 503, "unavailable", "postgres", "shard 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &testenv.LogBuffer{}
			r := testEngine(t, func(context.Context) error { return tt.err }, logs)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			var body map[string]string
			json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != tt.code || body["status"] != tt.status || body["failing"] != tt.failing || body["degraded"] != tt.degraded {
				t.Fatalf("%d %s, want %d %s failing %q degraded %q", w.Code, w.Body, tt.code, tt.status, tt.failing, tt.degraded)
			}
			if strings.Contains(w.Body.String(), "10.0.3.7") || strings.Contains(w.Body.String(), "refused") {
				t.Fatalf("health answer leaks the detail: %s", w.Body)
			}
			if !strings.Contains(logs.String(), "10.0.3.7") {
				t.Fatalf("the detail is not logged: %s", logs)
			}
		})
	}
	if Down("redis", nil) != nil || Degraded("redis", nil) != nil {
		t.Fatal("Down(nil) or Degraded(nil) is not nil")
	}
}
