package main

import (
	"bytes"
	"fmt"
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
	writeBanner(&b, c, ".surge", nil)
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

// With Patroni, the banner names each member's server and REST API, says
// which one is primary, and how to see where the primary is now.
func TestBannerPatroni(t *testing.T) {
	svc := func(name, addr string) *launcher.Service {
		return &launcher.Service{Proc: &launcher.Proc{Name: name}, Addr: addr}
	}
	p := &launcher.Patroni{}
	for i, port := range []int{42001, 42002, 42003} {
		name := fmt.Sprintf("pg%d", i+1)
		p.Members = append(p.Members, &launcher.PatroniMember{Name: name, Port: port,
			API: fmt.Sprintf("127.0.0.1:%d", port+100), Config: "/s/patroni/" + name + "/patroni.yml"})
	}
	c := &launcher.Cluster{URL: "http://127.0.0.1:8080", Patroni: p, Result: svc("result", "127.0.0.1:41004"),
		Admin: svc("admin", "127.0.0.1:41005")}
	var b bytes.Buffer
	writeBanner(&b, c, ".surge", []string{"sync standby", "primary", "sync standby"})
	got := b.String()
	for _, want := range []string{
		"postgres  pg1  127.0.0.1:42001  sync standby Patroni REST API http://127.0.0.1:42101\n",
		"          pg2  127.0.0.1:42002  primary      Patroni REST API http://127.0.0.1:42102\n",
		"          pg3  127.0.0.1:42003  sync standby Patroni REST API http://127.0.0.1:42103\n",
		"curl -s http://127.0.0.1:42101/cluster", "patronictl -c /s/patroni/pg1/patroni.yml list",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("banner lacks %q:\n%s", want, got)
		}
	}
}

// make run starts Postgres as 3 Patroni members unless told otherwise.
func TestRunDefaultsToThreePatroniMembers(t *testing.T) {
	cmd := runCommand(func(string) string { return "" })
	f := cmd.Flags().Lookup("postgres-members")
	if f == nil || f.DefValue != "3" {
		t.Fatalf("--postgres-members: %+v, want a flag defaulting to 3", f)
	}
}
