package launcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestHAProxyConfigIsValid(t *testing.T) {
	tests := []struct {
		name string
		cfg  HAProxyConfig
		want []string
	}{
		{"two shards", HAProxyConfig{Bind: "127.0.0.1:8080", Web: []string{"127.0.0.1:1", "127.0.0.1:2"}, Result: []string{"127.0.0.1:3"}},
			[]string{"balance roundrobin", "option httpchk GET /healthz", "server web0 127.0.0.1:1 check", "server web1 127.0.0.1:2 check",
				"use_backend result if to_results", "use_backend result if order_status reading", "server result0 127.0.0.1:3 check",
				"use_backend stream if to_stream", "server result0 127.0.0.1:3 track result/result0", "option abortonclose",
				"http-request deny deny_status 404 if { path,url_dec -m reg ^/+metrics(/|$) }", "maxconn 4096"}},
		{"edge caps", HAProxyConfig{Bind: "127.0.0.1:8080", Web: []string{"127.0.0.1:1"}, Result: []string{"127.0.0.1:3", "127.0.0.1:5"},
			MaxConn: 100, ConnPerIP: 20, StreamsPerResult: 30},
			[]string{"maxconn 100", "tcp-request connection track-sc1 src table conns_per_ip", "tcp-request connection reject if { sc_conn_cur(1) gt 20 }",
				"backend conns_per_ip", "timeout queue 1s", "server result0 127.0.0.1:3 track result/result0 maxconn 30",
				"server result1 127.0.0.1:5 track result/result1 maxconn 30"}},
		{"with admin", HAProxyConfig{Bind: "127.0.0.1:8080", Web: []string{"127.0.0.1:1"}, Result: []string{"127.0.0.1:3"}, Admin: []string{"127.0.0.1:4"}},
			[]string{"use_backend admin if to_admin", "server admin0 127.0.0.1:4 check"}},
	}
	cert, _, err := SelfSignedCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests = append(tests, struct {
		name string
		cfg  HAProxyConfig
		want []string
	}{"TLS and per-address limit", HAProxyConfig{Bind: "127.0.0.1:8080", Web: []string{"127.0.0.1:1"}, Result: []string{"127.0.0.1:3"},
		RatePerIP: 100, TLSBind: "127.0.0.1:8443", TLSCert: cert},
		[]string{"bind 127.0.0.1:8443 ssl crt " + cert, "redirect location 'https://%[req.hdr(host),regsub(:[0-9]+$,)]:8443%[capture.req.uri]' code 301 unless { ssl_fc }",
			"Strict-Transport-Security", "http_req_rate(10s)", "deny_status 429 if { sc_http_req_rate(0) gt 100 }"}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := RenderHAProxy(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(text), w) {
					t.Errorf("config lacks %q:\n%s", w, text)
				}
			}
			if testing.Short() {
				return
			}
			bin, err := LookBinary("haproxy")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "haproxy.cfg")
			os.WriteFile(path, text, 0o644)
			if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			}
		})
	}
}
