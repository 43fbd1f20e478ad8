package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/stackfile"
)

// `stack render` prints the committed docker-stack.yml by default, and the
// stack for the sizes its flags give, with TLS at HAProxy with --tls.
func TestRenderCommand(t *testing.T) {
	render := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"render"}, args...), func(string) string { return "" }, &out, &errOut)
		return out.String(), err
	}
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
	if _, err := render("--shards", "0"); err == nil {
		t.Fatal("render --shards 0: no error")
	}
}
