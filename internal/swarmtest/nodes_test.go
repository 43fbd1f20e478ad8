package swarmtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/dind"
	"github.com/surge-vote/surge/internal/stackfile"
	"github.com/surge-vote/surge/internal/testenv"
)

// The Swarm's nodes: Docker-in-Docker containers of this machine's engine
// (internal/dind), on a bridge of their own. Node 1 is the manager; the
// README's layout puts shards 1, 2 and 3 on three different nodes, and
// Postgres beside shard 3.
const (
	nodeCount  = 3
	nodePrefix = "surge-swarmtest"
	// nodeSubnet is outside Swarm's overlay pool (10.0.0.0/8) and Docker's
	// default bridges (172.17–172.30).
	nodeSubnet = "172.31.240.0/24"
)

// placement is the node (index into e.cluster.Nodes) of each label.
var placement = map[string]int{
	stackfile.ShardNodeLabel(1): 0,
	stackfile.ShardNodeLabel(2): 1,
	stackfile.ShardNodeLabel(3): 2,
	stackfile.PostgresLabel:     2,
	stackfile.ShardNodeLabel(4): 0, // the shard added while the stack runs
}

// startNodes starts the nodes, forms the Swarm, loads the images into
// every node and points the docker CLI (DOCKER_HOST) at the manager; the
// cluster is removed at the end of the test, whatever happens.
func (e *env) startNodes(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now()
	c, err := dind.Start(ctx, dind.Options{Image: e.nodeImage, Prefix: nodePrefix, Nodes: nodeCount,
		Subnet: nodeSubnet, SocketDir: t.TempDir(), Engine: e.engine, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	e.cluster = c
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("remove the nodes: %v", err)
		}
	})
	ls, err := c.Docker(ctx, c.Manager(), nil, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(lines(ls)); n < 3 {
		t.Fatalf("swarm nodes: %d, want at least 3:\n%s", n, ls)
	}
	t.Logf("swarm nodes: %d (formed in %s)\n%s", len(lines(ls)), time.Since(t0).Round(time.Millisecond), ls)
	t1 := time.Now()
	if err := c.Load(ctx, e.images()...); err != nil {
		t.Fatal(err)
	}
	t.Logf("images loaded into every node in %s: %s", time.Since(t1).Round(time.Millisecond), strings.Join(e.images(), " "))
	t.Setenv("DOCKER_HOST", c.Manager().Host)
	e.entry = c.Nodes[0]
}

// images are what every node needs: ours and the stand-ins.
func (e *env) images() []string {
	return []string{e.image + ":" + e.tag, e.redisImage, e.postgresImage, e.haproxyImage, e.prometheusImage}
}

// labelNode puts a placement label on its node.
func (e *env) labelNode(t *testing.T, label string) *dind.Node {
	t.Helper()
	n := e.cluster.Nodes[placement[label]]
	must(t, "node", "update", "--label-add", label+"=true", n.ID)
	return n
}

// nodeOf is the node that holds a label.
func (e *env) nodeOf(label string) *dind.Node { return e.cluster.Nodes[placement[label]] }

// baseURL is HAProxy's published port on node n (host mode: every node's
// HAProxy listens on its own address).
func (e *env) baseURL(n *dind.Node) string {
	return "http://" + n.Addr.String() + ":" + strconv.Itoa(e.port)
}

// up are the nodes not killed by the test.
func (e *env) up() []*dind.Node {
	var out []*dind.Node
	for _, n := range e.cluster.Nodes {
		if !e.down[n.Name] {
			out = append(out, n)
		}
	}
	return out
}

// on runs the docker CLI against node n's daemon.
func (e *env) on(ctx context.Context, n *dind.Node, args ...string) (string, error) {
	return e.cluster.Docker(ctx, n, nil, args...)
}

// onNodeID is on for the node of a Swarm node ID; a node that is down or
// unknown answers an error.
func (e *env) onNodeID(ctx context.Context, id string, args ...string) (string, error) {
	n := e.cluster.Node(id)
	if n == nil || e.down[n.Name] {
		return "", fmt.Errorf("node %s is down or unknown", id)
	}
	return e.on(ctx, n, args...)
}

// mustOn is on that fails the test on error.
func (e *env) mustOn(t testing.TB, n *dind.Node, args ...string) string {
	t.Helper()
	out, err := e.on(context.Background(), n, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// taskContainer is the container of a running task, on its node.
type taskContainer struct {
	node *dind.Node
	id   string
	slot int
}

func (c taskContainer) String() string { return c.node.Name + "/" + c.id[:min(12, len(c.id))] }

// containers returns the containers of a service's running tasks, from
// Swarm's view: each on the node that runs it.
func (e *env) containers(t testing.TB, service string) []taskContainer {
	t.Helper()
	out, err := e.runningContainers(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) runningContainers(ctx context.Context, service string) ([]taskContainer, error) {
	st, err := readStack(ctx)
	if err != nil {
		return nil, err
	}
	s, ok := st.service(service)
	if !ok {
		return nil, fmt.Errorf("no service %s", service)
	}
	var out []taskContainer
	for _, task := range running(st.tasks[s.ID]) {
		if task.Status.ContainerStatus == nil || task.Status.ContainerStatus.ContainerID == "" {
			continue
		}
		n := e.cluster.Node(task.NodeID)
		if n == nil || e.down[n.Name] {
			continue // on a node killed or replaced, which Swarm has not written off yet
		}
		out = append(out, taskContainer{node: n, id: task.Status.ContainerStatus.ContainerID, slot: task.Slot})
	}
	return out, nil
}

// haproxyStats reads the statistics of the HAProxy on node n (port 8404
// inside its container; not published): per backend, the servers it has
// up, and how many sessions its web backend has had (one per request:
// http-server-close).
func (e *env) haproxyStats(ctx context.Context, n *dind.Node) (up map[string]int, webSessions int64, err error) {
	out, err := e.on(ctx, n, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+stack+"_haproxy")
	if err != nil || len(lines(out)) != 1 {
		return nil, 0, fmt.Errorf("haproxy container on %s: %q %v", n.Name, out, err)
	}
	raw, err := e.on(ctx, n, "exec", out, "bash", "-c",
		`exec 3<>/dev/tcp/127.0.0.1/8404 && printf 'GET /stats;csv HTTP/1.0\r\n\r\n' >&3 && cat <&3`)
	if err != nil {
		return nil, 0, err
	}
	// HAProxy answers in chunks, whose boundaries may cut a line: read it
	// as the HTTP response it is.
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw+"\r\n\r\n")), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("HAProxy stats on %s: %w", n.Name, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("HAProxy stats on %s: %s %v", n.Name, resp.Status, err)
	}
	csv := string(body)
	const stot, status = 7, 17 // columns of HAProxy's CSV statistics
	up = map[string]int{}
	for _, l := range lines(csv) {
		f := strings.Split(l, ",")
		switch {
		case len(f) <= status:
		case f[0] == "web" && f[1] == "BACKEND":
			webSessions, _ = strconv.ParseInt(f[stot], 10, 64)
		case f[1] != "FRONTEND" && f[1] != "BACKEND" && f[status] == "UP":
			up[f[0]]++
		}
	}
	return up, webSessions, nil
}

// routed reports whether the HAProxy of every node that is up has found,
// through Docker's DNS, and checked every task of web, result and admin
// that should run (a frontend whose node is down is not).
func (e *env) routed() error {
	// stream is result's servers again (it tracks them), for the live
	// streams' own backend.
	want := map[string]int{"web": 0, "result": 2, "stream": 2, "admin": 2}
	for k := range e.webServices {
		if !e.down[e.nodeOf(stackfile.ShardNodeLabel(k+1)).Name] {
			want["web"]++
		}
	}
	for _, n := range e.up() {
		up, _, err := e.haproxyStats(context.Background(), n)
		if err != nil {
			return err
		}
		if !maps.Equal(up, want) {
			return fmt.Errorf("HAProxy on %s: servers up %v, want %v", n.Name, up, want)
		}
	}
	return nil
}

// webRequests waits until the HAProxy the load enters through has sent n
// more requests to the web backend: the load is reaching the stack.
func (e *env) webRequests(ctx context.Context, n int64) error {
	_, from, err := e.haproxyStats(ctx, e.entry)
	if err != nil {
		return err
	}
	return testenv.WaitFor(ctx, steadyBound, func() error {
		_, now, err := e.haproxyStats(ctx, e.entry)
		if err == nil && now < from+n {
			err = fmt.Errorf("HAProxy on %s sent %d requests to web, want %d", e.entry.Name, now-from, n)
		}
		return err
	})
}

// nodeNames lists nodes by name.
func nodeNames(nodes []*dind.Node) string {
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	return strings.Join(slices.Sorted(slices.Values(names)), ", ")
}
