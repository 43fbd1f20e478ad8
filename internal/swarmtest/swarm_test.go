package swarmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/surge-vote/surge/internal/dind"
	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/stackfile"
	"github.com/surge-vote/surge/internal/testenv"
)

// The stack is deployed under this name, as in the README.
const stack = "surge"

// env is what `make test-stack` (stack/deploy/test-stack.sh) passes in.
type env struct {
	image, tag                                   string // ours: SURGE_IMAGE, SURGE_TAG
	redisImage, postgresImage, haproxyImage      string // the stand-ins
	prometheusImage                              string // the stand-in for prom/prometheus (the monitoring step)
	nodeImage                                    string // the Swarm nodes' (NODE_IMAGE)
	engine                                       string // this machine's engine (DOCKER_HOST as the test started)
	cluster                                      *dind.Cluster
	entry                                        *dind.Node      // the node whose HAProxy the load enters through
	down                                         map[string]bool // nodes the test has killed, by name
	shards, workers                              int
	root, stackFile                              string
	port                                         int
	adminPassword                                string
	rollImage                                    string
	remedies                                     []string // moby/swarmkit#2242, see settle
	deployEnv                                    []string
	webServices, redisServices, expectedServices []string
}

func loadEnv(t *testing.T) *env {
	if os.Getenv("SURGE_SWARM_TEST") != "1" {
		t.Skip("the Swarm test runs through `make test-stack` (SURGE_SWARM_TEST=1), which builds the images first")
	}
	e := &env{image: os.Getenv("SURGE_IMAGE"), tag: os.Getenv("SURGE_TAG"), redisImage: os.Getenv("REDIS_IMAGE"),
		postgresImage: os.Getenv("POSTGRES_IMAGE"), haproxyImage: os.Getenv("HAPROXY_IMAGE"), prometheusImage: os.Getenv("PROMETHEUS_IMAGE"),
		nodeImage: os.Getenv("NODE_IMAGE"), engine: os.Getenv("DOCKER_HOST"), down: map[string]bool{}}
	for name, v := range map[string]string{"SURGE_IMAGE": e.image, "SURGE_TAG": e.tag, "REDIS_IMAGE": e.redisImage,
		"POSTGRES_IMAGE": e.postgresImage, "HAPROXY_IMAGE": e.haproxyImage, "PROMETHEUS_IMAGE": e.prometheusImage, "NODE_IMAGE": e.nodeImage} {
		if v == "" {
			t.Fatalf("%s is not set: run `make test-stack`", name)
		}
	}
	d := stackfile.Defaults()
	e.shards, e.workers = d.Shards, d.Workers
	var err error
	if e.root, err = moduleRoot(); err != nil {
		t.Fatal(err)
	}
	e.stackFile = filepath.Join(e.root, "docker-stack.yml")
	// Each node has its own addresses: the default port is free on all.
	e.port = stackfile.ListenPort
	for k := 1; k <= e.shards; k++ {
		e.webServices = append(e.webServices, fmt.Sprintf("%s_web-%d", stack, k))
		e.redisServices = append(e.redisServices, fmt.Sprintf("%s_redis-%d", stack, k))
	}
	e.expectedServices = append(append(append([]string{}, e.webServices...), e.redisServices...),
		stack+"_haproxy", stack+"_admin", stack+"_result", stack+"_worker", stack+"_postgres")
	sort.Strings(e.expectedServices)
	e.deployEnv = []string{"SURGE_IMAGE=" + e.image, "SURGE_TAG=" + e.tag, "REDIS_IMAGE=" + e.redisImage,
		"POSTGRES_IMAGE=" + e.postgresImage, "HAPROXY_IMAGE=" + e.haproxyImage, "PROMETHEUS_IMAGE=" + e.prometheusImage,
		"HTTP_PORT=" + strconv.Itoa(e.port),
		// The load comes from one address: the per-address limits on new
		// voters and orders would answer 429s.
		"SURGE_NEW_VOTERS_PER_IP=0", "SURGE_ORDERS_PER_IP=0"}
	return e
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestSwarmStack deploys the committed docker-stack.yml on a Swarm of three
// Docker-in-Docker nodes (shards 1, 2 and 3 each on its own node, Postgres
// beside shard 3, HAProxy on every node) and exercises it through HAProxy's port on
// the nodes: steps 1 to 7 of the deployment issue, docker kill of a Redis,
// a frontend and Postgres under load, whole nodes killed under load, a
// rolling update, a shard added, TLS from a Swarm secret, and Prometheus
// with the alert rules.
func TestSwarmStack(t *testing.T) {
	e := loadEnv(t)
	start := time.Now()
	ctx := context.Background()
	step := func(format string, args ...any) {
		t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	// 1. Swarm, node labels, secrets, deploy.
	e.setUp(t)
	t.Cleanup(func() { e.tearDown(t, step) })
	step("1. deploy: docker stack deploy -c docker-stack.yml %s (published port %d)", stack, e.port)
	must(t, "stack", "deploy", "--resolve-image", "never", "--prune", "-c", e.stackFile, stack)

	// 2. Every service converged and healthy, and HAProxy routing. Postgres
	// first (it initialises its volume within its start period), then the
	// services that need it, then HAProxy finds them.
	c := newClient(e.baseURL(e.entry), 32)
	st, err := readStack(ctx)
	if err != nil {
		t.Fatalf("2. %v", err)
	}
	var names []string
	for _, s := range st.services {
		names = append(names, s.Spec.Name)
	}
	if slices.Sort(names); !slices.Equal(names, e.expectedServices) {
		t.Fatalf("2. services %v, want %v", names, e.expectedServices)
	}
	pg := stack + "_postgres"
	bound := slow * (st.verdict(pg) + st.maxVerdict(pg) + haproxyFind)
	if err := e.settle(t, ctx, "2. deploy", bound, func() error {
		if err := e.routed(); err != nil {
			return err
		}
		_, _, err := c.counts(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	step("2. all %d services converged, every task healthy, HAProxy routing (bound %s)", len(e.expectedServices), bound)
	e.logRestarts(t)
	// Redis and Postgres are out of reach: nothing published, internal
	// networks only.
	e.checkInternals(t, hostPort(e.port, stackfile.ListenPort))
	step("2. only HAProxy publishes (%d, host mode); every redis-k and postgres sits on internal networks only", e.port)

	baseFinal, baseTotal, err := c.counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expect := newTally()
	for k, v := range baseFinal {
		expect.final[k] = v
	}
	if baseTotal != 0 {
		t.Logf("the poll already has %d votes (a volume from an earlier run?); counting from there", baseTotal)
	}

	// 3. Votes through HAProxy, counted exactly.
	t3 := time.Now()
	runLoad(ctx, c, expect, loadOptions{Voters: 1000, Concurrency: 16, ChangeShare: 0.5, MaxDuration: 2 * time.Minute})
	final, nodes, failures := expect.snapshot()
	if n := expect.failed.Load(); n > 0 {
		t.Fatalf("3. %d votes failed: %v", n, failures)
	}
	step("3. %d votes acknowledged (1000 voters, half of them changed their vote) in %s", expect.ok.Load(), time.Since(t3).Round(time.Millisecond))
	e.waitCounts(t, ctx, c, final, "3. votes")
	step("3. counts match exactly: %v", final)
	e.checkQueues(t)

	// 3. Orders through HAProxy: an item made through /admin, then more
	// orders than its stock through every frontend, some of them sent twice.
	// Exactly the stock is confirmed; the rest are rejected; nothing twice.
	const stock, orders, repeats = 100, 300, 50
	it, err := c.createItem(ctx, "admin", e.adminPassword, "swarm sneaker "+randomHex(3), stock)
	if err != nil {
		t.Fatalf("3. %v", err)
	}
	testenv.Eventually(t, notifyBound, func() error {
		for range 2 * len(e.webServices) { // round robin: every frontend's cache
			q, err := c.catalogueQuantity(ctx, it.ID)
			if err != nil {
				return err
			}
			if q != stock {
				return fmt.Errorf("item %d at %d, want %d", it.ID, q, stock)
			}
		}
		return nil
	})
	t3 = time.Now()
	if failed := placeOrders(ctx, c, "swarm-order", it.ID, orders, repeats, 16); len(failed) > 0 {
		t.Fatalf("3. %d orders not acknowledged: %v", len(failed), failed[:min(len(failed), 10)])
	}
	outcomes, err := orderOutcomes(ctx, c, "swarm-order", orders, e.drainBound(t))
	if err != nil {
		t.Fatalf("3. orders: %v", err)
	}
	if outcomes["confirmed/"] != stock || outcomes["rejected/out_of_stock"] != orders-stock || len(outcomes) != 2 {
		t.Fatalf("3. order outcomes %v, want %d confirmed and %d rejected out_of_stock", outcomes, stock, orders-stock)
	}
	testenv.Eventually(t, notifyBound, func() error {
		if q, err := c.catalogueQuantity(ctx, it.ID); err != nil || q != 0 {
			return fmt.Errorf("3. stock after the orders: item %d at %d (%v), want 0", it.ID, q, err)
		}
		return nil
	})
	step("3. %d orders (+%d repeated ids) for a stock of %d: %v in %s; stock now 0", orders, repeats, stock, outcomes, time.Since(t3).Round(time.Millisecond))
	e.checkQueues(t)

	// 4. Round robin: every web task answered, in fair shares.
	e.checkNodes(t, nodes, expect.ok.Load())
	step("4. 202s came from %d frontends: %v", len(nodes), nodes)

	// 5. Three workers; one is SIGKILLed under load; nothing is lost.
	t5 := time.Now()
	must(t, "service", "scale", "--detach", stack+"_worker=3")
	workerBound := st.restartBound(stack + "_worker")
	if err := e.settle(t, ctx, "5. scaling the workers", workerBound, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(e.containers(t, stack+"_worker")); n != 3 {
		t.Fatalf("5. %d worker containers, want 3", n)
	}
	step("5. scaled %s_worker to 3 (%s)", stack, time.Since(t5).Round(time.Millisecond))
	// One worker is killed once a fifth of the voters are acknowledged:
	// under load, with entries in flight.
	const voters5 = 1500
	before := expect.ok.Load()
	killed := make(chan string, 1)
	go func() {
		defer close(killed)
		if err := testenv.WaitFor(ctx, load5, func() error { return progressed(expect, before, voters5/5) }); err != nil {
			t.Errorf("5. %v", err)
			return
		}
		ids := e.containers(t, stack+"_worker")
		victim := ids[len(ids)/2]
		name, _ := e.on(ctx, victim.node, "inspect", "-f", "{{.Name}}", victim.id)
		if _, err := e.on(ctx, victim.node, "kill", victim.id); err != nil {
			t.Error(err)
		}
		killed <- victim.node.Name + "/" + strings.TrimPrefix(name, "/")
	}()
	runLoad(ctx, c, expect, loadOptions{Voters: voters5, Concurrency: 8, Every: 20 * time.Millisecond, ChangeShare: 0.3, MaxDuration: load5})
	victim, ok := <-killed
	if !ok {
		t.FailNow()
	}
	final, _, failures = expect.snapshot()
	if n := expect.failed.Load(); n > 0 {
		t.Fatalf("5. %d votes failed: %v", n, failures)
	}
	step("5. SIGKILLed worker %s while %d more votes were acknowledged", victim, expect.ok.Load()-before)
	e.waitCounts(t, ctx, c, final, "5. after a worker was killed")
	if err := e.settle(t, ctx, "5. the killed worker replaced", workerBound, nil); err != nil {
		t.Fatal(err)
	}
	tasks := must(t, "service", "ps", stack+"_worker", "--format", "{{.Name}} {{.DesiredState}} {{.CurrentState}} {{.Error}}")
	if !strings.Contains(tasks, "Failed") && !strings.Contains(tasks, "exit (137)") {
		t.Errorf("5. no failed worker task after the kill:\n%s", tasks)
	}
	e.checkQueues(t)
	step("5. nothing lost: counts match exactly (%v), no pending entries, no dead letters; the killed task was replaced", final)

	// 5. docker kill of a shard's Redis, a frontend and Postgres, each under
	// the load tool's votes and orders: Swarm restarts them, the stores keep
	// their data, and the verifier finds nothing lost or doubled.
	e.killUnderLoad(t, ctx, c, final, step)

	// Whole nodes killed under load: shard 2's (back on its disk, then
	// replaced without it) and Postgres's.
	e.nodeLoss(t, ctx, step)

	// 6. A new image tag rolled over every web service under a steady load:
	// not one failed request.
	// Built on this machine, loaded into every node: the same image ID
	// everywhere.
	e.rollImage = e.image + ":swarmtest-roll"
	build := exec.Command("docker", "build", "--pull=false", "-q", "-t", e.rollImage, "-")
	build.Env = dind.Env(os.Environ(), e.engine)
	build.Stdin = strings.NewReader(fmt.Sprintf("FROM %s:%s\nLABEL surge.swarmtest.roll=%q\n", e.image, e.tag, randomHex(4)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("6. build %s: %v\n%s", e.rollImage, err, out)
	}
	if err := e.cluster.Load(ctx, e.rollImage); err != nil {
		t.Fatalf("6. %v", err)
	}
	oldID, err := dind.Run(ctx, e.engine, nil, "image", "inspect", "-f", "{{.Id}}", e.image+":"+e.tag)
	if err != nil {
		t.Fatal(err)
	}
	newID, err := dind.Run(ctx, e.engine, nil, "image", "inspect", "-f", "{{.Id}}", e.rollImage)
	if err != nil {
		t.Fatal(err)
	}
	if oldID == newID {
		t.Fatal("6. the roll image is the same image")
	}
	t6 := time.Now()
	before = expect.ok.Load()
	rollBound := st.rollBound(e.webServices...)
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		runLoad(loadCtx, c, expect, loadOptions{Concurrency: 8, Every: 25 * time.Millisecond, ChangeShare: 0.2,
			MaxDuration: time.Duration(len(e.webServices)+1) * rollBound})
	}()
	stop := func() { stopLoad(); <-loadDone }
	// The roll starts under a steady load, and the load goes on through the
	// rolled services before it stops.
	if err := testenv.WaitFor(ctx, steadyBound, func() error { return progressed(expect, before, steadyVotes) }); err != nil {
		stop()
		t.Fatalf("6. before the roll: %v", err)
	}
	for _, svc := range e.webServices {
		ts := time.Now()
		if _, err := docker(ctx, nil, "service", "update", "--detach", "--image", e.rollImage, svc); err != nil {
			stop()
			t.Fatalf("6. roll %s: %v", svc, err)
		}
		// Converged once the new task runs and the monitor period has
		// passed without a failure (which would roll the update back).
		if err := e.settle(t, ctx, "6. roll "+svc, rollBound, nil); err != nil {
			stop()
			t.Fatal(err)
		}
		step("6. rolled %s to %s in %s (bound %s)", svc, e.rollImage, time.Since(ts).Round(time.Millisecond), rollBound)
	}
	rolled := expect.ok.Load()
	err = testenv.WaitFor(ctx, steadyBound, func() error { return progressed(expect, rolled, steadyVotes) })
	stop()
	if err != nil {
		t.Fatalf("6. after the roll: %v", err)
	}
	final, _, failures = expect.snapshot()
	sent := expect.ok.Load() - before
	if n := expect.failed.Load(); n > 0 {
		t.Fatalf("6. rolling update: %d of %d requests failed: %v", n, sent+n, failures)
	}
	st, err = readStack(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range e.webServices {
		s, _ := st.service(svc)
		for _, task := range running(st.tasks[s.ID]) {
			if task.Status.ContainerStatus == nil {
				t.Fatalf("6. %s: task %s has no container", svc, task)
			}
			id := task.Status.ContainerStatus.ContainerID
			img, err := e.onNodeID(ctx, task.NodeID, "inspect", "-f", "{{.Image}}", id)
			if err != nil {
				t.Fatal(err)
			}
			if img != newID {
				t.Errorf("6. %s container %s runs %s, want the roll image %s", svc, id[:12], img, newID)
			}
		}
	}
	if sent < 200 {
		t.Fatalf("6. only %d votes during the roll: not a steady load", sent)
	}
	step("6. rolling update over %d web services in %s: %d votes acknowledged, 0 failed", len(e.webServices), time.Since(t6).Round(time.Millisecond), sent)
	e.waitCounts(t, ctx, c, final, "6. after the rolling update")
	e.checkQueues(t)
	step("6. counts match exactly after the roll: %v", final)

	// As the README says to add a shard to a running stack: label a node,
	// render with one more shard, deploy again; under a steady load, with no
	// failed request. HAProxy finds the new frontend with no config change.
	final = e.addShard(t, ctx, c, expect, step)

	// TLS at HAProxy, from a Swarm secret: the stack rendered with --tls.
	e.checkTLS(t, ctx, final, step)

	// Monitoring: the stack rendered with --monitoring (Prometheus only):
	// every target up, and the shard alert fires when a shard's Redis is
	// gone.
	e.checkMonitoring(t, ctx, step)

	// 7. Tear down: t.Cleanup, which also runs when a step fails.
	if len(e.remedies) > 0 {
		t.Logf("moby/swarmkit#2242 hit %d times, remedied (see the steps above): %s", len(e.remedies), strings.Join(e.remedies, "; "))
	}
	step("done in %s; tearing down", time.Since(start).Round(time.Second))
}

// setUp starts the nodes and forms the Swarm (see startNodes), labels the
// nodes as the README tells users to, and creates the secrets.
func (e *env) setUp(t *testing.T) {
	e.startNodes(t)
	labels := []string{stackfile.PostgresLabel}
	for k := 1; k <= e.shards; k++ {
		labels = append(labels, stackfile.ShardNodeLabel(k))
	}
	for _, label := range labels {
		n := e.labelNode(t, label)
		t.Logf("label %s on %s", label, n.Name)
	}
	e.adminPassword = randomHex(16)
	for name, value := range map[string]string{
		stackfile.PostgresPasswordSecret: randomHex(24),
		stackfile.CookieKeysSecret:       randomHex(32),
		stackfile.AdminPasswordSecret:    e.adminPassword,
	} {
		cmd := exec.Command("docker", "secret", "create", name, "-")
		cmd.Stdin = strings.NewReader(value)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker secret create %s: %v\n%s", name, err, out)
		}
	}
	// docker stack deploy reads the variables from its environment.
	for _, kv := range e.deployEnv {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// tearDown removes the stack, and checks that every container of it on
// every node stops within its stop grace period; on failure it first
// prints what the services said. The nodes go after it (startNodes), with
// everything on them.
func (e *env) tearDown(t *testing.T, step func(string, ...any)) {
	ctx := context.Background()
	if t.Failed() {
		out, _ := docker(ctx, nil, "node", "ls")
		t.Logf("nodes:\n%s", out)
		out, _ = docker(ctx, nil, "service", "ls")
		t.Logf("services:\n%s", out)
		for _, svc := range e.expectedServices {
			ps, _ := docker(ctx, nil, "service", "ps", "--no-trunc", "--format", "{{.Name}} {{.Node}} {{.Image}} {{.DesiredState}} {{.CurrentState}} {{.Error}}", svc)
			logs, _ := docker(ctx, nil, "service", "logs", "--raw", "--tail", "15", svc)
			t.Logf("--- %s\n%s\n%s", svc, ps, logs)
		}
	}
	if e.rollImage != "" {
		dind.Run(ctx, e.engine, nil, "image", "rm", e.rollImage)
	}
	t0 := time.Now()
	// Every container stops within its stop grace period.
	bound := slow * 60 * time.Second // postgres's, the longest in docker-stack.yml
	if st, err := readStack(ctx); err == nil {
		bound = 0
		for _, s := range st.services {
			bound = max(bound, slow*s.stopGrace())
		}
	}
	if _, err := docker(ctx, nil, "stack", "rm", stack); err != nil {
		t.Error(err)
	}
	if err := testenv.WaitFor(ctx, bound, func() error {
		for _, n := range e.up() {
			out, err := e.on(ctx, n, "ps", "-aq", "--filter", "label=com.docker.stack.namespace="+stack)
			if err != nil || out != "" {
				return fmt.Errorf("containers left on %s: %q %v", n.Name, out, err)
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	step("7. stack removed in %s; removing the nodes", time.Since(t0).Round(time.Millisecond))
}

// Bounds of the waits that are not on Swarm (see docker_test.go for those).
const (
	// notifyBound: a change reaches a cache fed by LISTEN/NOTIFY (every
	// frontend's catalogue, result's counts) in milliseconds; one whose
	// connection dropped reconnects within 5 s (its longest backoff) and
	// reloads within 5 s (the load's timeout), plus slow × that.
	notifyBound = (1 + slow) * 10 * time.Second
	// steadyVotes is how many acknowledged votes make a steady load, and
	// steadyBound bounds waiting for them: 1 vote a second would do. The
	// loads here run at tens to hundreds a second.
	steadyVotes = 50
	steadyBound = steadyVotes * time.Second
	// load5 bounds step 5's load (1500 voters, 8 at a time, 20 ms apart):
	// at 25 votes a second, far below this machine's slowest, it is done.
	load5 = 2 * time.Minute
)

// progressed reports whether n more votes than before have been
// acknowledged.
func progressed(t *tally, before, n int64) error {
	if got := t.ok.Load() - before; got < n {
		return fmt.Errorf("%d votes acknowledged, want %d", got, n)
	}
	return nil
}

// drainBound bounds waiting for the workers to apply what was
// acknowledged: a killed worker's replacement must start (its verdict),
// the entries a dead consumer held are claimed once idle (drain's
// ClaimIdle, looked for every ClaimEvery), and the backlog of a step
// (a few thousand entries) takes seconds at the workers' thousands a
// second: 10 s.
func (e *env) drainBound(t *testing.T) time.Duration {
	st, err := readStack(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := drain.DefaultConfig()
	claimEvery := d.ClaimEvery
	if claimEvery <= 0 {
		claimEvery = d.ClaimIdle / 3 // drain's default
	}
	return slow * (st.verdict(stack+"_worker") + d.ClaimIdle + claimEvery + 10*time.Second)
}

// waitCounts waits until the poll's counts equal want exactly. The total can
// only grow towards the number of voters: more is a double count.
func (e *env) waitCounts(t *testing.T, ctx context.Context, c *client, want map[string]int64, what string) {
	t.Helper()
	var wantTotal int64
	for _, v := range want {
		wantTotal += v
	}
	var last map[string]int64
	err := testenv.WaitFor(ctx, e.drainBound(t), func() error {
		got, total, err := c.counts(ctx)
		if err != nil {
			return err
		}
		last = got
		if total > wantTotal {
			return backoff.Permanent(fmt.Errorf("total %d > %d voters acknowledged: counted twice", total, wantTotal))
		}
		for _, ch := range choices {
			if got[ch] != want[ch] {
				return fmt.Errorf("counts %v, want %v", got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: counts never matched: %v (last %v)", what, err, last)
	}
}

// checkQueues asserts that every shard's consumer group holds no pending
// entry and that nothing was dead-lettered.
func (e *env) checkQueues(t *testing.T) {
	t.Helper()
	for _, svc := range e.redisServices {
		ids := e.containers(t, svc)
		if len(ids) != 1 {
			t.Fatalf("%s: %d containers", svc, len(ids))
		}
		err := testenv.WaitFor(context.Background(), e.drainBound(t), func() error {
			pending, err := e.on(context.Background(), ids[0].node, "exec", ids[0].id, "redis-cli", "XPENDING", "surge:entries", "workers")
			if err != nil {
				return err
			}
			if first := strings.SplitN(pending, "\n", 2)[0]; first != "0" {
				return fmt.Errorf("%s: XPENDING: %s", svc, pending)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		dead := e.mustOn(t, ids[0].node, "exec", ids[0].id, "redis-cli", "XLEN", "surge:dead")
		if dead != "0" {
			t.Fatalf("%s: %s entries in surge:dead", svc, dead)
		}
	}
}

// checkNodes asserts that the 202s came from every web task, round robin.
func (e *env) checkNodes(t *testing.T, nodes map[string]int, total int64) {
	t.Helper()
	var want []string
	for _, svc := range e.webServices {
		for _, c := range e.containers(t, svc) {
			want = append(want, e.mustOn(t, c.node, "inspect", "-f", "{{.Config.Hostname}}", c.id))
		}
	}
	sort.Strings(want)
	var got []string
	for n := range nodes {
		got = append(got, n)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("4. 202s came from %v, want every web task %v", got, want)
	}
	fair := float64(total) / float64(len(want))
	for n, count := range nodes {
		if float64(count) < 0.5*fair {
			t.Errorf("4. %s answered %d of %d votes: not round robin (%v)", n, count, total, nodes)
		}
	}
}

// logRestarts logs the stack's tasks that exited before it converged, with
// their last words.
func (e *env) logRestarts(t *testing.T) {
	ctx := context.Background()
	out, _ := docker(ctx, nil, "stack", "ps", stack, "--filter", "desired-state=shutdown",
		"--format", "{{.ID}} {{.Name}} {{.CurrentState}} {{.Error}}")
	for _, l := range lines(out) {
		id, rest, _ := strings.Cut(l, " ")
		where, _ := docker(ctx, nil, "inspect", "--type", "task", "-f", "{{.NodeID}} {{.Status.ContainerStatus.ContainerID}}", id)
		node, cid, _ := strings.Cut(where, " ")
		logs, _ := e.onNodeID(ctx, node, "logs", "--tail", "5", cid)
		t.Logf("restarted before converging: %s\n%s", rest, logs)
	}
}

// addShard deploys the stack again with one shard more, under load.
// It returns the default poll's counts after it.
func (e *env) addShard(t *testing.T, ctx context.Context, c *client, expect *tally, step func(string, ...any)) map[string]int64 {
	ts := time.Now()
	k := e.shards + 1
	opt := stackfile.Defaults()
	opt.Shards = k
	file := writeStack(t, opt, "docker-stack.yml")
	node := e.labelNode(t, stackfile.ShardNodeLabel(k))

	before, failedBefore := expect.ok.Load(), expect.failed.Load()
	st, err := readStack(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The deploy changes admin and result (the image the web services were
	// rolled to), result and the workers (the new shard), and starts web-k
	// and redis-k, which are like web-1 and redis-1.
	changed := []string{stack + "_admin", stack + "_result", stack + "_worker", e.webServices[0], e.redisServices[0]}
	bound := st.rollBound(changed...) + haproxyFind
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		runLoad(loadCtx, c, expect, loadOptions{Concurrency: 4, Every: 25 * time.Millisecond, ChangeShare: 0.2, MaxDuration: 2 * bound})
	}()
	stop := func() { stopLoad(); <-loadDone }
	if err := testenv.WaitFor(ctx, steadyBound, func() error { return progressed(expect, before, steadyVotes) }); err != nil {
		stop()
		t.Fatalf("add a shard: before the deploy: %v", err)
	}
	// Our services keep the image the web services were rolled to.
	t.Setenv("SURGE_TAG", strings.TrimPrefix(e.rollImage, e.image+":"))
	if out, err := docker(ctx, nil, "stack", "deploy", "--resolve-image", "never", "-c", file, stack); err != nil {
		stop()
		t.Fatalf("add a shard: %v\n%s", err, out)
	}
	e.webServices = append(e.webServices, fmt.Sprintf("%s_web-%d", stack, k))
	e.redisServices = append(e.redisServices, fmt.Sprintf("%s_redis-%d", stack, k))
	e.expectedServices = append(e.expectedServices, fmt.Sprintf("%s_web-%d", stack, k), fmt.Sprintf("%s_redis-%d", stack, k))
	sort.Strings(e.expectedServices)
	err = e.settle(t, ctx, "add a shard", bound, e.routed)
	if err == nil {
		// The load goes on through the grown stack before it stops.
		deployed := expect.ok.Load()
		err = testenv.WaitFor(ctx, steadyBound, func() error { return progressed(expect, deployed, steadyVotes) })
	}
	stop()
	if err != nil {
		t.Fatalf("add a shard: %v", err)
	}
	final, _, failures := expect.snapshot()
	if n := expect.failed.Load() - failedBefore; n > 0 {
		t.Fatalf("add a shard: %d requests failed: %v", n, failures)
	}
	if shards := must(t, "service", "inspect", "-f", "{{range .Spec.TaskTemplate.ContainerSpec.Env}}{{println .}}{{end}}", stack+"_worker"); !strings.Contains(shards, fmt.Sprintf("redis-%d:6379", k)) {
		t.Fatalf("add a shard: the workers do not read redis-%d:\n%s", k, shards)
	}
	newWeb := fmt.Sprintf("%s_web-%d-1", stack, k)
	step("+. added shard %d (on %s) to the running stack in %s (bound %s) under load: %d votes acknowledged, 0 failed; every HAProxy sees %d frontends",
		k, node.Name, time.Since(ts).Round(time.Millisecond), bound, expect.ok.Load()-before, k)

	// The new frontend takes its share of votes, and they are counted.
	probe := newTally()
	runLoad(ctx, c, probe, loadOptions{Voters: 300, Concurrency: 6, MaxDuration: time.Minute})
	if n := probe.failed.Load(); n > 0 {
		_, _, f := probe.snapshot()
		t.Fatalf("add a shard: %d votes failed: %v", n, f)
	}
	pf, pnodes, _ := probe.snapshot()
	if pnodes[newWeb] < 300/k/2 {
		t.Fatalf("add a shard: %s answered %d of 300 votes (%v)", newWeb, pnodes[newWeb], pnodes)
	}
	for ch, v := range pf {
		final[ch] += v
	}
	e.waitCounts(t, ctx, c, final, "after adding a shard")
	e.checkQueues(t)
	step("+. %s answered %d of 300 new voters; counts match exactly: %v", newWeb, pnodes[newWeb], final)
	return final
}
