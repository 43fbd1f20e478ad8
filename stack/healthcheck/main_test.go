package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTargetFromListen(t *testing.T) {
	env := map[string]string{"SURGE_LISTEN": ":8080"}
	got, err := target(nil, func(k string) string { return env[k] })
	if err != nil || got != "http://127.0.0.1:8080/healthz" {
		t.Fatalf("target = %q, %v", got, err)
	}
	env["SURGE_LISTEN"] = "0.0.0.0:9000"
	if got, _ := target(nil, func(k string) string { return env[k] }); got != "http://127.0.0.1:9000/healthz" {
		t.Fatalf("target = %q", got)
	}
	if got, _ := target([]string{"http://x/healthz"}, func(string) string { return "" }); got != "http://x/healthz" {
		t.Fatalf("explicit URL ignored: %q", got)
	}
	for _, bad := range []string{"", "8080", "host:"} {
		env["SURGE_LISTEN"] = bad
		if _, err := target(nil, func(k string) string { return env[k] }); err == nil {
			t.Errorf("SURGE_LISTEN=%q: no error", bad)
		}
	}
}

func TestProbe(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if !healthy.Load() {
			http.Error(w, "redis down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	url, _ := target(nil, func(string) string { return ":" + port })
	if err := probe(url, time.Second); err != nil {
		t.Fatalf("healthy server: %v", err)
	}
	healthy.Store(false)
	if err := probe(url, time.Second); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unhealthy server: err = %v, want a 503", err)
	}
	srv.Close()
	if err := probe(url, time.Second); err == nil {
		t.Fatal("closed server: no error")
	}
}
