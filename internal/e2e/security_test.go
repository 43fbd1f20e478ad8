package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/voter"
)

// clientFrom returns a client whose connections come from a given loopback
// address, trusting the cluster's certificate when it has TLS.
func clientFrom(t *testing.T, c *launcher.Cluster, source string) *http.Client {
	pool := x509.NewCertPool()
	if c.CACert != nil && !pool.AppendCertsFromPEM(c.CACert) {
		t.Fatal("bad CA certificate")
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{DialContext: dialer.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// TLS at HAProxy: HTTP redirects to HTTPS, HTTPS answers carry HSTS, and the
// voter cookie is Secure behind TLS. A flood from one address is limited
// (429) while another address passes.
func TestEdgeTLSAndPerAddressRateLimit(t *testing.T) {
	c := up(t, 2, 1, func(o *launcher.Options) { o.TLS, o.RatePerIP = true, 40 })
	plain := clientFrom(t, c, "127.0.0.4")
	resp, err := plain.Get(c.URL + "/results")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(resp.Header.Get("Location"), c.TLSURL) {
		t.Fatalf("plain HTTP: %d to %q, want 301 to %s", resp.StatusCode, resp.Header.Get("Location"), c.TLSURL)
	}
	// A client that named the host by an IPv6 literal keeps it whole.
	req, err := http.NewRequest(http.MethodGet, c.URL+"/results?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "[::1]:8080"
	if resp, err = plain.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, tlsPort, _ := strings.Cut(strings.TrimPrefix(c.TLSURL, "https://"), ":")
	if want := "https://[::1]:" + tlsPort + "/results?x=1"; resp.Header.Get("Location") != want {
		t.Fatalf("IPv6 host: redirected to %q, want %q", resp.Header.Get("Location"), want)
	}

	flooder, other := clientFrom(t, c, "127.0.0.2"), clientFrom(t, c, "127.0.0.3")
	resp, err = other.Post(c.TLSURL+"/vote", "application/json", strings.NewReader(`{"choice":"cats"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("HTTPS vote: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	secure := false
	for _, ck := range resp.Cookies() {
		if ck.Name == voter.CookieName {
			secure = ck.Secure
		}
	}
	if !secure {
		t.Fatal("the voter cookie is not Secure behind TLS")
	}

	limited := 0
	for range 80 {
		resp, err := flooder.Get(c.TLSURL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 30 {
		t.Fatalf("only %d of 80 flood requests limited (limit 40 per 10 s)", limited)
	}
	resp, err = other.Get(c.TLSURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("another address got %d during the flood", resp.StatusCode)
	}
}
