package dind

import (
	"slices"
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	ok := Options{Image: "node:1", Prefix: "sw", Nodes: 3, Subnet: "172.31.240.0/24", SocketDir: "/run/sw"}
	nodes, err := plan(ok)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range nodes {
		got = append(got, n.Name+" "+n.Addr.String()+" "+n.Host)
	}
	want := []string{
		"sw-1 172.31.240.11 unix:///run/sw/sw-1/docker.sock",
		"sw-2 172.31.240.12 unix:///run/sw/sw-2/docker.sock",
		"sw-3 172.31.240.13 unix:///run/sw/sw-3/docker.sock",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("plan = %q, want %q", got, want)
	}

	bad := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no nodes", func(o *Options) { o.Nodes = 0 }, "at least 1"},
		{"no image", func(o *Options) { o.Image = "" }, "required"},
		{"no prefix", func(o *Options) { o.Prefix = "" }, "required"},
		{"no socket folder", func(o *Options) { o.SocketDir = "" }, "required"},
		{"not a prefix", func(o *Options) { o.Subnet = "172.31.240.0" }, "not an IPv4 prefix"},
		{"IPv6", func(o *Options) { o.Subnet = "fd00::/64" }, "not an IPv4 prefix"},
		{"too small", func(o *Options) { o.Subnet = "172.31.240.0/29" }, "no room for 3 nodes"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			if _, err := plan(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("plan: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// A node runs without --privileged: every capability but SYS_RESOURCE, on
// its fixed address, with its volume and socket folder.
func TestRunArgs(t *testing.T) {
	opt := Options{Image: "node:1", Prefix: "sw", Nodes: 1, Subnet: "172.31.240.0/24", SocketDir: "/run/sw"}
	nodes, _ := plan(opt)
	args := strings.Join(runArgs(opt, "sw", nodes[0]), " ")
	for _, want := range []string{"--name sw-1 --hostname sw-1", "--network sw --ip 172.31.240.11",
		"--cap-add ALL --cap-drop SYS_RESOURCE", "seccomp=unconfined", "systempaths=unconfined",
		"--tmpfs /run", "-v sw-1:/var/lib/docker", "-v /run/sw/sw-1:/run/dind", " node:1"} {
		if !strings.Contains(args, want) {
			t.Errorf("docker %s lacks %q", args, want)
		}
	}
	if strings.Contains(args, "--privileged") {
		t.Errorf("docker %s asks for --privileged", args)
	}
}

func TestEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "DOCKER_HOST=unix:///old.sock", "HOME=/root"}
	if got := Env(environ, "unix:///new.sock"); !slices.Equal(got, []string{"PATH=/bin", "HOME=/root", "DOCKER_HOST=unix:///new.sock"}) {
		t.Errorf("Env(new) = %q", got)
	}
	if got := Env(environ, ""); !slices.Equal(got, []string{"PATH=/bin", "HOME=/root"}) {
		t.Errorf("Env(\"\") = %q", got)
	}
}
