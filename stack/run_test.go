package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/launcher"
)

// The banner of `stack run` names every page a newcomer looks for, each
// service's own /metrics, and where the state that outlives the run is.
func TestBanner(t *testing.T) {
	svc := func(name, addr string) *launcher.Service {
		return &launcher.Service{Proc: &launcher.Proc{Name: name}, Addr: addr}
	}
	c := &launcher.Cluster{URL: "http://127.0.0.1:8080", AdminUser: "admin", AdminPassword: "s3cret",
		Web:     []*launcher.Service{svc("web-1", "127.0.0.1:41001"), svc("web-2", "127.0.0.1:41002")},
		Workers: []*launcher.Service{svc("worker-1", "127.0.0.1:41003")},
		Result:  svc("result", "127.0.0.1:41004"), Admin: svc("admin", "127.0.0.1:41005")}
	var b bytes.Buffer
	writeBanner(&b, c, ".surge")
	got := b.String()
	for _, want := range []string{
		"http://127.0.0.1:8080/\n", "http://127.0.0.1:8080/shop\n", "http://127.0.0.1:8080/results\n",
		"http://127.0.0.1:8080/admin  (user admin, password s3cret)",
		"web-1     http://127.0.0.1:41001/metrics", "web-2     http://127.0.0.1:41002/metrics",
		"worker-1  http://127.0.0.1:41003/metrics", "result    http://127.0.0.1:41004/metrics",
		"admin     http://127.0.0.1:41005/metrics", "status    go run ./stack status",
		".surge (", "kept across runs", "make clean", ".surge/logs",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("banner lacks %q:\n%s", want, got)
		}
	}
}
