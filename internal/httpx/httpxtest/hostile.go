package httpxtest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/voter"
)

// Hostile is a request that must be refused with status and a JSON error.
type Hostile struct {
	Name        string
	Method      string // POST if empty
	Path        string
	ContentType string // none if empty
	Body        string
	Chunked     bool     // send the body without a Content-Length
	Header      []string // more header name, value pairs
	Status      int
}

// Send sends c to base, signed by auth if not nil, and returns the answer
// and its body.
func Send(t *testing.T, base string, c Hostile, auth func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	method := c.Method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader = strings.NewReader(c.Body)
	if c.Chunked {
		body = io.MultiReader(body) // unknown length: sent chunked
	}
	req, err := http.NewRequest(method, base+c.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.ContentType != "" {
		req.Header.Set("Content-Type", c.ContentType)
	}
	for i := 0; i+1 < len(c.Header); i += 2 {
		req.Header.Set(c.Header[i], c.Header[i+1])
	}
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, c.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, c.Path, err)
	}
	return resp, b
}

// WantJSONError checks for the given status with a JSON {"error": "..."}.
func WantJSONError(t *testing.T, resp *http.Response, body []byte, status int) {
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
	if frag := GoInternals(e.Error); frag != "" {
		t.Errorf("message %q shows Go internals (%q)", e.Error, frag)
	}
}

// The two content types a body may have.
const (
	JSON = httpx.ContentJSON
	Form = httpx.ContentForm
)

// Nested is open and close, each n times.
func Nested(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

// Run sends each case and checks its JSON error, that no voter cookie
// was set, and that nothing was written.
func Run(t *testing.T, base string, auth func(*http.Request), cases []Hostile, nothingWritten func(*testing.T)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			resp, body := Send(t, base, c, auth)
			WantJSONError(t, resp, body, c.Status)
			for _, ck := range resp.Cookies() {
				if ck.Name == voter.CookieName {
					t.Errorf("a refused request set the voter cookie %q", ck.Value)
				}
			}
			nothingWritten(t)
		})
	}
}

// ServeReal serves h on a real loopback listener with the production
// http.Server (httpx.NewServer), adjusted by tweak.
func ServeReal(t *testing.T, h http.Handler, tweak func(*http.Server)) string {
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

// RawExchange writes req on a fresh connection (in the background, since a
// server may answer before reading it all) and reads one answer.
func RawExchange(t *testing.T, addr, req string) (*http.Response, []byte) {
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

// HeaderFloods are header sections over httpx.NewServer's MaxHeaderBytes
// (64 KiB) and well under net/http's default (1 MiB).
func HeaderFloods() map[string]string {
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
