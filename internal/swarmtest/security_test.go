package swarmtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/stackfile"
	"github.com/surge-vote/surge/stack/deploy"
)

// writeStack renders the stack for opt into a new directory, with
// haproxy.cfg where the stack file looks for it, and returns its path.
func writeStack(t *testing.T, opt stackfile.Options, name string) string {
	t.Helper()
	text, err := stackfile.Render(opt)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, filepath.FromSlash(deploy.HAProxyConfigPath))
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	if err := os.WriteFile(cfg, deploy.HAProxyConfig, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, text, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

type publishedPort struct {
	TargetPort, PublishedPort int
	PublishMode               string
}

func (p publishedPort) String() string {
	return fmt.Sprintf("%d:%d/%s", p.PublishedPort, p.TargetPort, p.PublishMode)
}

// hostPort is HAProxy's port target, published on the host.
func hostPort(published, target int) publishedPort {
	return publishedPort{TargetPort: target, PublishedPort: published, PublishMode: "host"}
}

// checkInternals asserts, from Swarm itself, that HAProxy is the only
// service that publishes, exactly the ports in want, that no container of the
// stack but HAProxy's binds a host port, and that every network the stores
// (every redis-k and postgres) are on is internal.
func (e *env) checkInternals(t *testing.T, want ...publishedPort) {
	t.Helper()
	var wantText, wantBinds []string
	for _, p := range want {
		wantText = append(wantText, p.String())
		wantBinds = append(wantBinds, fmt.Sprintf(":%d->%d/tcp", p.PublishedPort, p.TargetPort))
	}
	for _, svc := range e.expectedServices {
		out := must(t, "service", "inspect", "-f", "{{json .Spec.EndpointSpec}}\t{{json .Endpoint.Ports}}\t{{json .Spec.TaskTemplate.Networks}}", svc)
		f := strings.Split(out, "\t")
		var spec struct{ Ports []publishedPort }
		var actual []publishedPort
		var nets []struct{ Target string }
		if len(f) != 3 || json.Unmarshal([]byte(f[0]), &spec) != nil || json.Unmarshal([]byte(f[1]), &actual) != nil || json.Unmarshal([]byte(f[2]), &nets) != nil {
			t.Fatalf("%s: service inspect: %q", svc, out)
		}
		wantHere := []string(nil)
		if svc == stack+"_haproxy" {
			wantHere = slices.Sorted(slices.Values(wantText))
		}
		for what, ports := range map[string][]publishedPort{"spec": spec.Ports, "endpoint": actual} {
			var got []string
			for _, p := range ports {
				got = append(got, p.String())
			}
			// Swarm keeps no order among a service's ports.
			if slices.Sort(got); !slices.Equal(got, wantHere) {
				t.Errorf("%s publishes %v (%s), want %v", svc, got, what, wantHere)
			}
		}
		if svc != stack+"_postgres" && !slices.Contains(e.redisServices, svc) {
			continue
		}
		if len(nets) == 0 {
			t.Errorf("%s is on no network", svc)
		}
		for _, n := range nets {
			if got := must(t, "network", "inspect", "-f", "{{.Name}} internal={{.Internal}}", n.Target); !strings.HasSuffix(got, " internal=true") {
				t.Errorf("%s is on network %s: want only internal networks", svc, got)
			}
		}
	}
	// What the nodes actually bind ("0.0.0.0:80->8080/tcp"; a port the
	// image only exposes shows as "8080/tcp").
	var all []string
	for _, n := range e.up() {
		all = append(all, lines(e.mustOn(t, n, "ps", "--filter", "label=com.docker.stack.namespace="+stack, "--format", "{{.Label \"com.docker.swarm.service.name\"}}\t{{.Ports}}"))...)
	}
	for _, l := range all {
		svc, ports, _ := strings.Cut(l, "\t")
		var binds []string
		for _, p := range strings.Split(ports, ", ") {
			if strings.Contains(p, "->") {
				binds = append(binds, p)
			}
		}
		if svc != stack+"_haproxy" {
			if len(binds) > 0 {
				t.Errorf("a container of %s binds host ports %v", svc, binds)
			}
			continue
		}
		for _, w := range wantBinds {
			if !slices.ContainsFunc(binds, func(b string) bool { return strings.HasSuffix(b, w) }) {
				t.Errorf("HAProxy's container binds %v, none of them *%s", binds, w)
			}
		}
	}
}

// checkTLS redeploys the running stack rendered with --tls, its certificate
// a self-signed one in the Swarm secret, as the README says, and checks over
// HTTPS that a vote gets a 202 with a Secure cookie and HSTS, that plain
// HTTP is redirected to HTTPS, and that the vote is counted.
func (e *env) checkTLS(t *testing.T, ctx context.Context, final map[string]int64, step func(string, ...any)) {
	ts := time.Now()
	var addrs []netip.Addr // the nodes, where HAProxy serves HTTPS
	for _, n := range e.cluster.Nodes {
		addrs = append(addrs, n.Addr)
	}
	crt, certPEM, err := launcher.SelfSignedCert(t.TempDir(), addrs...)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker", "secret", "create", stackfile.TLSSecret, crt)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker secret create %s: %v\n%s", stackfile.TLSSecret, err, out)
	}
	httpsPort := stackfile.TLSPort // each node has its own addresses
	t.Setenv("HTTPS_PORT", strconv.Itoa(httpsPort))
	opt := stackfile.Defaults()
	opt.Shards, opt.TLS = len(e.webServices), true
	file := writeStack(t, opt, "docker-stack.tls.yml")
	if out, err := docker(ctx, nil, "stack", "deploy", "--resolve-image", "never", "-c", file, stack); err != nil {
		t.Fatalf("tls: %v\n%s", err, out)
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	// The load enters through another node than before.
	e.entry = e.cluster.Nodes[len(e.cluster.Nodes)-1]
	httpsURL := "https://" + e.entry.Addr.String() + ":" + strconv.Itoa(httpsPort)
	c := &client{base: httpsURL, http: &http.Client{Transport: tr, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	// Only HAProxy changes: stop-first, so every service behind it must be
	// found again.
	st, err := readStack(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bound := st.rollBound(stack+"_haproxy") + haproxyFind
	if err := e.settle(t, ctx, "tls", bound, func() error {
		if err := e.routed(); err != nil {
			return err
		}
		_, _, err := c.counts(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	step("tls: redeployed with --tls and the secret %s in %s (bound %s); HTTPS on %d", stackfile.TLSSecret, time.Since(ts).Round(time.Millisecond), bound, httpsPort)

	// A vote over HTTPS: 202, a Secure cookie (web believes HAProxy's
	// X-Forwarded-Proto), HSTS.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, httpsURL+"/vote", strings.NewReader(`{"poll":"`+poll+`","choice":"cats"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("tls: vote over HTTPS: %v", err)
	}
	resp.Body.Close()
	secure := false
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName {
			secure = ck.Secure
		}
	}
	hsts := resp.Header.Get("Strict-Transport-Security")
	if resp.StatusCode != http.StatusAccepted || !secure || !strings.HasPrefix(hsts, "max-age=") {
		t.Fatalf("tls: vote over HTTPS: %s, Secure cookie %v, HSTS %q: want 202, a Secure %s cookie and HSTS", resp.Status, secure, hsts, cookieName)
	}
	final["cats"]++

	// Plain HTTP: a redirect to the same path on the published HTTPS port.
	resp, err = c.http.Get(e.baseURL(e.entry) + "/results?x=1")
	if err != nil {
		t.Fatalf("tls: plain HTTP: %v", err)
	}
	resp.Body.Close()
	if want := httpsURL + "/results?x=1"; resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Fatalf("tls: plain HTTP: %s to %q, want 301 to %s", resp.Status, resp.Header.Get("Location"), want)
	}
	e.waitCounts(t, ctx, c, final, "tls: the HTTPS vote")
	e.checkInternals(t, hostPort(e.port, stackfile.ListenPort), hostPort(httpsPort, stackfile.TLSPort))
	step("tls: HTTPS vote 202 with a Secure cookie and HSTS %q; HTTP 301 to HTTPS; counted: %v; only HAProxy publishes (HTTP and HTTPS)", hsts, final)
}
