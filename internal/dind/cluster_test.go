package dind

import (
	"context"
	"os"
	"strings"
	"testing"
)

// A real cluster from the node image (NODE_IMAGE, built by
// stack/deploy/standins/build.sh; `make test-stack` sets it): three nodes
// form a Swarm; a killed worker comes back on its disk with the same node
// ID; a replaced one joins fresh under a new ID, the old one gone; Close
// leaves nothing behind.
func TestClusterKillRestartReplace(t *testing.T) {
	image := os.Getenv("NODE_IMAGE")
	if image == "" {
		t.Skip("NODE_IMAGE is not set: run through `make test-stack`, which builds the node image")
	}
	ctx := context.Background()
	c, err := Start(ctx, Options{Image: image, Prefix: "surge-dindtest", Nodes: 3, Subnet: "172.31.241.0/24",
		SocketDir: t.TempDir(), Engine: os.Getenv("DOCKER_HOST"), Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			c.Close(ctx)
		}
	})
	nodes := func() []string {
		t.Helper()
		out, err := c.Docker(ctx, c.Manager(), nil, "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(out, "\n")
	}
	if got := nodes(); len(got) != 3 {
		t.Fatalf("swarm nodes %q, want 3", got)
	}

	n := c.Nodes[1]
	id := n.ID
	if err := c.Kill(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, n); err != nil {
		t.Fatal(err)
	}
	if n.ID != id {
		t.Fatalf("restarted on its disk, %s has ID %s, want %s", n.Name, n.ID, id)
	}

	if err := c.Kill(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := c.Replace(ctx, n); err != nil {
		t.Fatal(err)
	}
	if n.ID == id || n.ID == "" {
		t.Fatalf("replaced, %s has ID %q, want a new one", n.Name, n.ID)
	}
	got := nodes()
	if len(got) != 3 || strings.Count(strings.Join(got, "\n"), "Ready") != 3 {
		t.Fatalf("after the replacement, swarm nodes %q, want 3 Ready", got)
	}

	closed = true
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"ps", "-aq", "--filter", "label=surge.dind=surge-dindtest"},
		{"volume", "ls", "-q", "--filter", "label=surge.dind=surge-dindtest"},
		{"network", "ls", "-q", "--filter", "label=surge.dind=surge-dindtest"},
	} {
		if out, err := c.engine(ctx, nil, args...); err != nil || out != "" {
			t.Errorf("left after Close: docker %s: %q %v", strings.Join(args, " "), out, err)
		}
	}
}
