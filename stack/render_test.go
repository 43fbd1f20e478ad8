package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/stackfile"
)

// stackCommand runs `stack cmd args…` and returns what it printed.
func stackCommand(cmd string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{cmd}, args...), func(string) string { return "" }, &out, &errOut)
	return out.String(), err
}

// `stack render` prints the committed docker-stack.yml by default, and the
// stack for the sizes its flags give, with TLS at HAProxy with --tls, and
// with Prometheus and Grafana with --monitoring.
func TestRenderCommand(t *testing.T) {
	render := func(args ...string) (string, error) { return stackCommand("render", args...) }
	got, err := render()
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../docker-stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(committed) {
		t.Fatal("go run ./stack render differs from docker-stack.yml: run go run ./stack render > docker-stack.yml")
	}
	got, err = render("--shards", "5", "--workers", "3")
	if err != nil {
		t.Fatal(err)
	}
	opt := stackfile.Defaults()
	opt.Shards, opt.Workers = 5, 3
	want, _ := stackfile.Render(opt)
	if got != string(want) || !strings.Contains(got, "  web-5:") || !strings.Contains(got, "replicas: 3") {
		t.Fatal("render --shards 5 --workers 3 is not the 5-shard, 3-worker stack")
	}
	got, err = render("--tls")
	if err != nil {
		t.Fatal(err)
	}
	opt = stackfile.Defaults()
	opt.TLS = true
	want, _ = stackfile.Render(opt)
	if got != string(want) || got == string(committed) || !strings.Contains(got, "TLS_CRT") {
		t.Fatal("render --tls is not the default stack with TLS at HAProxy")
	}
	got, err = render("--monitoring", "--publish-grafana")
	if err != nil {
		t.Fatal(err)
	}
	opt = stackfile.Defaults()
	opt.Monitoring, opt.PublishGrafana = true, true
	want, _ = stackfile.Render(opt)
	if got != string(want) || !strings.Contains(got, "  prometheus:") || !strings.Contains(got, "${GRAFANA_PORT:-3000}") {
		t.Fatal("render --monitoring --publish-grafana is not the default stack with Prometheus and a published Grafana")
	}
	for _, args := range [][]string{{"--shards", "0"}, {"--publish-grafana"}} {
		if _, err := render(args...); err == nil {
			t.Fatalf("render %v: no error", args)
		}
	}
}
