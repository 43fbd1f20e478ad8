package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/loadgen"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

var full = flag.Bool("chaos.full", false, "full sizes (make chaos): ≥100k votes and ≥10k orders per schedule")

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	code := 0
	if !testing.Short() {
		dir, err := testenv.BuildBinaries()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binDir = dir
		code = m.Run()
		os.RemoveAll(dir)
	} else {
		code = m.Run()
	}
	os.Exit(code)
}

// size is one schedule's load.
type size struct {
	rate     float64
	duration time.Duration
	voters   int
	outage   time.Duration // Postgres outage
	stock    int64
}

func sizes() size {
	if *full {
		return size{rate: 2600, duration: 56 * time.Second, voters: 30000, outage: 30 * time.Second, stock: 2000}
	}
	return size{rate: 400, duration: 8 * time.Second, voters: 600, outage: 3 * time.Second, stock: 100}
}

// cluster is a pipeline with a supervisor that restarts dead workers, as
// Swarm's restart policy would.
type cluster struct {
	*launcher.Cluster
	mu       sync.Mutex // guards the services' processes across kill and restart
	restarts int
	// stall is how long a schedule may stop every commit (a failover): the
	// drain is given that much longer.
	stall time.Duration
}

func start(t *testing.T, workerEnv ...string) *cluster { return startWith(t, nil, workerEnv...) }

// startWith starts a cluster with options changed by set (if not nil).
func startWith(t *testing.T, set func(*launcher.Options), workerEnv ...string) *cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "surge-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	opt := launcher.Options{Dir: dir, BinDir: binDir, Shards: 3, Workers: 2,
		WorkerEnv: append([]string{"SURGE_CLAIM_IDLE=" + claimIdle.String(), "SURGE_CLAIM_EVERY=500ms"}, workerEnv...),
		// The load tool's voters change their votes: allow them. They all
		// come from one address (loopback): no per-address limits.
		WebEnv: []string{"SURGE_VOTER_RATE=50", "SURGE_VOTER_BURST=50", "SURGE_NEW_VOTERS_PER_IP=0", "SURGE_ORDERS_PER_IP=0"}}
	if set != nil {
		set(&opt)
	}
	// initdb (a Patroni cluster's members and etcd), then every service
	// starting and passing HAProxy's checks.
	bound := 2 * time.Minute
	if opt.PostgresMembers > 1 {
		bound += testenv.PatroniStart
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	lc, err := launcher.Up(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{Cluster: lc}
	sctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range lc.Workers {
		wg.Go(func() {
			for {
				select {
				case <-sctx.Done():
					return
				case <-w.Done():
				}
				// The restart policy's delay, as Swarm's: behaviour, not a
				// wait. It ends with the schedule.
				select {
				case <-sctx.Done():
					return
				case <-time.After(restartDelay):
				}
				// Like Swarm's restart policy: again and again, even if the
				// new process dies before it is listening.
				c.mu.Lock()
				lc.Restart(sctx, w)
				c.restarts++
				c.mu.Unlock()
			}
		})
	}
	t.Cleanup(func() {
		stop()
		wg.Wait()
		lc.Stop()
		if t.Failed() {
			t.Logf("state and logs kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	})
	return c
}

// row is one schedule's line in the table.
type row struct {
	Schedule     string  `json:"schedule"`
	VotesAcked   int64   `json:"votes_acked"`
	OrdersAcked  int64   `json:"orders_acked"`
	Lost         int64   `json:"lost"`
	Duplicated   int64   `json:"duplicated"`
	Oversold     int64   `json:"oversold"`
	Unexpected   int64   `json:"unexpected"`
	Unknown      int64   `json:"unknown"`
	Errors       int64   `json:"non_2xx"`
	BacklogPeak  int64   `json:"backlog_peak,omitempty"`
	CatchUpS     float64 `json:"catch_up_s,omitempty"`
	Notes        string  `json:"notes"`
	DurationSecs float64 `json:"duration_s"`
}

var (
	tableMu sync.Mutex
	table   []row
)

// run puts load on c while fault runs, then verifies. fault must heal
// everything before it returns; it gets the load's deadline.
func run(t *testing.T, name string, c *cluster, fault func(ctx context.Context, until time.Time) string) row {
	t.Helper()
	sz := sizes()
	cfg := loadgen.DefaultConfig()
	cfg.Target, cfg.AdminUser, cfg.AdminPass = c.URL, c.AdminUser, c.AdminPassword
	cfg.Rate, cfg.Duration, cfg.MaxRequests = sz.rate, sz.duration, int64(sz.rate*sz.duration.Seconds())+1000
	cfg.Voters, cfg.ChangeRatio = sz.voters, 0.3
	cfg.OrderRatio, cfg.Items, cfg.Stock = 0.1, 3, sz.stock
	cfg.Timeout = 5 * time.Second
	// At worst every request's entry is still queued when the load ends.
	cfg.Verify, cfg.DrainTimeout = true, drainBound(cfg.MaxRequests)+c.stall
	dir := filepath.Join(outDir(t), name)
	os.MkdirAll(dir, 0o755)
	cfg.JSONPath, cfg.PlotPath = filepath.Join(dir, "report.json"), filepath.Join(dir, "plot.png")

	began := time.Now()
	until := began.Add(sz.duration - 2*time.Second) // heal before the load ends
	notes := make(chan string, 1)
	var healed int64 // the backlog once the fault has healed
	go func() {
		note := fault(context.Background(), until)
		shards := shardsOf(c)
		healed = backlog(context.Background(), shards)
		for _, cl := range shards.Clients {
			cl.Close()
		}
		notes <- note
	}()
	var out strings.Builder
	rep, err := loadgen.Run(context.Background(), cfg, &out)
	note := <-notes
	var verr *loadgen.VerifyError
	if err != nil && !errors.As(err, &verr) {
		t.Fatalf("%s: load: %v\n%s", name, err, out.String())
	}
	if rep == nil || rep.Verdict == nil {
		t.Fatalf("%s: no verdict\n%s", name, out.String())
	}
	v := rep.Verdict
	t.Logf("%s: backlog %d entries when healed, 2 s before the load ended; queues drained %.1f s after it ended",
		name, healed, rep.DrainSeconds)
	r := row{Schedule: name, VotesAcked: int64(rep.Ledger.VotesAcked), OrdersAcked: int64(rep.Ledger.OrdersAcked),
		Lost: v.Lost, Duplicated: v.Duplicated, Oversold: v.Oversold, Unexpected: v.Unexpected,
		Unknown: v.UnknownVotes + v.UnknownOrders, Notes: note, DurationSecs: time.Since(began).Seconds()}
	for class, n := range rep.Summary.ByClass {
		if !strings.HasPrefix(class, "2") {
			r.Errors += n
		}
	}
	tableMu.Lock()
	table = append(table, r)
	tableMu.Unlock()
	if r.Lost != 0 || r.Duplicated != 0 || r.Oversold != 0 || r.Unexpected != 0 {
		t.Errorf("%s: lost %d, duplicated %d, oversold %d, unexpected %d\n%s", name, r.Lost, r.Duplicated, r.Oversold, r.Unexpected, out.String())
	}
	// Every request the load tool sends is valid: a fault may make an
	// answer unknown (5xx, a timeout), never a refusal.
	for class, n := range rep.Summary.ByClass {
		if strings.HasPrefix(class, "4") {
			t.Errorf("%s: %d valid requests answered %s", name, n, class)
		}
	}
	// The volume at full size; enough to mean something in a short run.
	minVotes, minOrders := int64(1000), int64(100)
	if *full {
		minVotes, minOrders = 100_000, 10_000
	}
	if r.VotesAcked < minVotes || r.OrdersAcked < minOrders {
		t.Errorf("%s: %d votes and %d orders acknowledged, want at least %d and %d", name, r.VotesAcked, r.OrdersAcked, minVotes, minOrders)
	}
	return r
}

func outDir(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), ".surge", "chaos")
}

// Bounds on what the schedules wait for (see also testenv's).
const (
	// claimIdle is SURGE_CLAIM_IDLE in start: a dead worker's entries wait
	// that long before another worker claims them.
	claimIdle = 3 * time.Second
	// restartDelay is the supervisor's pause before it restarts a dead
	// worker, as Swarm's restart policy has one.
	restartDelay = 200 * time.Millisecond
	// drainFloor is the fewest entries a second the workers drain while they
	// are being killed (the worker kill schedule). Measured here: ~XXX/s at
	// worst; 13,700/s net after the Postgres outage, with the load running.
	drainFloor = 500
)

// drainBound bounds the time to drain a backlog of n entries: a dead
// worker's entries wait claimIdle, a killed one is restarted, and the
// entries drain at drainFloor at least.
func drainBound(n int64) time.Duration {
	return claimIdle + restartDelay + testenv.ProcStart + time.Duration(n)*time.Second/drainFloor
}

// backInRotation waits until HAProxy sends requests to s again: s itself is
// up (its health needs its Redis and its first load of the polls from
// Postgres, which times out after 5 s), then HAProxy's rise.
func backInRotation(ctx context.Context, c *cluster, s *launcher.Service) error {
	return testenv.WaitFor(ctx, 5*time.Second+launcher.RiseTime, func() error { return c.InRotation(ctx, s) })
}

// sleepUntil waits for d, or less if the deadline comes first; it reports
// whether there is time left after.
func sleepUntil(d time.Duration, until time.Time) bool {
	if left := time.Until(until); left < d {
		d = max(left, 0)
	}
	time.Sleep(d)
	return time.Now().Before(until)
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos (skipped in -short)")
	}
	t.Run("worker kill", func(t *testing.T) {
		// Workers also crash on their own between commit and XACK.
		c := start(t, "SURGE_TEST_CRASH_AFTER_COMMIT=0.02")
		r := run(t, "worker kill", c, func(ctx context.Context, until time.Time) string {
			kills := 0
			for i := 0; sleepUntil(1500*time.Millisecond, until); i++ {
				c.mu.Lock()
				c.Workers[i%len(c.Workers)].Kill() // the supervisor restarts it
				c.mu.Unlock()
				kills++
			}
			// The supervisor restarts the last one.
			err := testenv.WaitFor(ctx, restartDelay+testenv.ProcStart, func() error {
				c.mu.Lock()
				defer c.mu.Unlock()
				for _, w := range c.Workers {
					select {
					case <-w.Done():
						return fmt.Errorf("%s is not running", w.Name)
					default:
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("restart the workers: %v", err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			return fmt.Sprintf("%d SIGKILLs, %d restarts in all (incl. crashes after commit)", kills, c.restarts)
		})
		t.Logf("%+v", r)
	})

	t.Run("redis kill", func(t *testing.T) {
		c := start(t)
		var probes, accepted int
		r := run(t, "redis kill", c, func(ctx context.Context, until time.Time) string {
			for i := 0; sleepUntil(time.Second, until); i++ {
				shard := i % len(c.Redis)
				c.Redis[shard].Kill()
				// Its frontend goes on acknowledging votes: with three
				// shards, two copies fit on the two still up.
				for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
					resp, err := http.Post("http://"+c.Web[shard].Addr+"/vote", "application/json", strings.NewReader(`{"choice":"cats"}`))
					if err == nil {
						probes++
						if resp.StatusCode == http.StatusAccepted {
							accepted++
						}
						resp.Body.Close()
					}
					time.Sleep(100 * time.Millisecond)
				}
				rctx, cancel := context.WithTimeout(ctx, testenv.RedisStart)
				err := c.RestartRedis(rctx, shard)
				cancel()
				if err != nil {
					t.Errorf("restart redis: %v", err)
					return "restart failed"
				}
				// One shard down at a time: the next kill waits for this
				// frontend to be back.
				if err := backInRotation(ctx, c, c.Web[shard]); err != nil {
					t.Errorf("after its Redis restarted: %v", err)
					return "frontend not back"
				}
			}
			if probes == 0 || accepted != probes {
				t.Errorf("a frontend whose Redis was down acknowledged %d of %d votes, want all", accepted, probes)
			}
			return fmt.Sprintf("%d probes of a frontend whose Redis was down: %d acknowledged and counted", probes, accepted)
		})
		// The probes voted, each as a new voter, in the default poll, which
		// the load leaves alone: every acknowledged one is counted, once.
		err := testenv.WaitFor(context.Background(), 10*time.Second, func() error {
			n, err := defaultPollCount(c, "cats")
			if err == nil && n != int64(accepted) {
				err = fmt.Errorf("%d probe votes counted, %d acknowledged", n, accepted)
			}
			return err
		})
		if err != nil {
			t.Error(err)
		}
		t.Logf("%+v", r)
	})

	t.Run("postgres outage", func(t *testing.T) {
		c := start(t)
		var peak int64
		var catchUp time.Duration
		r := run(t, "postgres outage", c, func(ctx context.Context, until time.Time) string {
			sleepUntil(time.Second, until)
			if err := c.Postgres.Stop(10 * time.Second); err != nil {
				t.Errorf("stop postgres: %v", err)
			}
			shards := shardsOf(c)
			for end := time.Now().Add(sizes().outage); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
				if n := backlog(ctx, shards); n > peak {
					peak = n
				}
			}
			pctx, cancel := context.WithTimeout(ctx, testenv.PostgresStart)
			err := c.RestartPostgres(pctx)
			cancel()
			if err != nil {
				t.Errorf("restart postgres: %v", err)
			}
			back := time.Now()
			// Caught up: the backlog is back under one second of load (the
			// load goes on, so it is 0 only for moments between batches).
			steady := int64(sizes().rate)
			err = testenv.WaitFor(ctx, drainBound(peak), func() error {
				if n := backlog(ctx, shards); n < 0 || n > steady {
					return fmt.Errorf("backlog %d entries, want at most %d", n, steady)
				}
				return nil
			})
			catchUp = time.Since(back)
			if err != nil {
				t.Errorf("catch up after the outage (peak %d): %v", peak, err)
			}
			return fmt.Sprintf("Postgres down %s; backlog peak %d entries; back under 1 s of load %s after it returned (load still running)",
				sizes().outage, peak, catchUp.Round(10*time.Millisecond))
		})
		r.BacklogPeak, r.CatchUpS = peak, catchUp.Seconds()
		if r.Errors > 0 {
			t.Errorf("capture answered %d non-2xx during a Postgres outage; it must keep answering 202", r.Errors)
		}
		setLast(r)
		t.Logf("%+v", r)
	})

	t.Run("frontend kill", func(t *testing.T) {
		c := start(t)
		r := run(t, "frontend kill", c, func(ctx context.Context, until time.Time) string {
			kills := 0
			for i := 0; sleepUntil(time.Second, until); i++ {
				w := c.Web[i%len(c.Web)]
				w.Kill()
				kills++
				time.Sleep(1500 * time.Millisecond)
				rctx, cancel := context.WithTimeout(ctx, testenv.ProcStart)
				err := c.Restart(rctx, w)
				cancel()
				if err != nil {
					t.Errorf("restart %s: %v", w.Name, err)
					return "restart failed"
				}
				if err := backInRotation(ctx, c, w); err != nil {
					t.Errorf("after %s restarted: %v", w.Name, err)
					return "frontend not back"
				}
			}
			return fmt.Sprintf("%d frontend SIGKILLs; HAProxy failed over", kills)
		})
		t.Logf("%+v", r)
	})

	t.Run("network cut", func(t *testing.T) {
		ns := netns(t)
		c := startWith(t, func(o *launcher.Options) { o.Netns = ns })
		w := c.Workers[ns.Worker]
		pgPort := strconv.Itoa(c.Postgres.Port)
		_, shardPort, _ := strings.Cut(c.Redis[0].Addr, ":")
		r := run(t, "network cut", c, func(ctx context.Context, until time.Time) string {
			cuts := 0
			for i := 0; sleepUntil(time.Second, until); i++ {
				port, what := pgPort, "Postgres"
				if i%2 == 1 {
					port, what = shardPort, "shard 1"
				}
				// Packets to it are dropped: connections hang, as in a partition.
				rule := []string{"OUTPUT", "-d", ns.HostIP, "-p", "tcp", "--dport", port, "-j", "DROP"}
				iptables(t, ns, append([]string{"-A"}, rule...)...)
				cuts++
				t.Logf("%s cut from %s", w.Name, what)
				sleepUntil(3*time.Second, until.Add(time.Second))
				iptables(t, ns, append([]string{"-D"}, rule...)...)
			}
			return fmt.Sprintf("%d cuts of %s (in its own network namespace) from Postgres or shard 1, 3 s each", cuts, w.Name)
		})
		t.Logf("%+v", r)
	})

	// A node is its processes and its directories: the whole of it goes.
	t.Run("shard node loss", func(t *testing.T) {
		c := start(t)
		const lost = 1 // shard 2 and its frontend
		var undrained int64
		r := run(t, "shard node loss", c, func(ctx context.Context, until time.Time) string {
			sleepUntil(time.Second, until)
			// The workers hang first, so the shard holds entries not yet
			// drained when it dies (running, they drain within milliseconds).
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, w := range c.Workers {
				w.Pause()
			}
			defer func() {
				for _, w := range c.Workers {
					w.Resume()
				}
			}()
			shards := shardsOf(c)
			defer func() {
				for _, cl := range shards.Clients {
					cl.Close()
				}
			}()
			want := int64(minUndrained)
			if *full {
				want *= 10
			}
			err := testenv.WaitFor(ctx, 10*time.Second, func() error {
				b, err := shards.Backlog(ctx)
				if err != nil {
					return err
				}
				if undrained = b[lost].Pending + b[lost].Lag; undrained < want {
					return fmt.Errorf("shard %d holds %d undrained entries, waiting for %d", lost+1, undrained, want)
				}
				return nil
			})
			if err != nil {
				t.Errorf("backlog before the kill: %v", err)
				return "no backlog"
			}
			c.Web[lost].Kill()
			c.Redis[lost].Kill()
			if err := os.RemoveAll(c.Redis[lost].Dir); err != nil {
				t.Errorf("wipe shard %d: %v", lost+1, err)
			}
			rctx, cancel := context.WithTimeout(ctx, testenv.RedisStart)
			defer cancel()
			if err := c.RestartRedis(rctx, lost); err != nil {
				t.Errorf("a fresh Redis for shard %d: %v", lost+1, err)
				return "restart failed"
			}
			if err := c.Restart(ctx, c.Web[lost]); err != nil {
				t.Errorf("restart %s: %v", c.Web[lost].Name, err)
				return "restart failed"
			}
			return fmt.Sprintf("workers hung; shard %d's Redis and frontend SIGKILLed with %d undrained entries, its data deleted, a fresh empty Redis in its place",
				lost+1, undrained)
		})
		if err := backInRotation(context.Background(), c, c.Web[lost]); err != nil {
			t.Errorf("after the node's return: %v", err)
		}
		t.Logf("%+v", r)
	})

	t.Run("postgres node loss", func(t *testing.T) {
		c := startWith(t, func(o *launcher.Options) { o.PostgresMembers = 3 })
		p := c.Patroni
		c.stall = testenv.PatroniFailover(p)
		var killed time.Time
		var stopped time.Duration
		r := run(t, "postgres node loss", c, func(ctx context.Context, until time.Time) string {
			sleepUntil(time.Second, until)
			st, err := p.Status(ctx)
			if err != nil {
				t.Errorf("patroni: %v", err)
				return "no primary"
			}
			old := p.Members[st.Primary].Name
			if err := p.KillMember(st.Primary); err != nil {
				t.Errorf("kill %s: %v", old, err)
			}
			// From the moment its Postgres is gone: a commit the dying
			// primary had begun may still have returned just before.
			killed = time.Now()
			if err := p.WipeMember(st.Primary); err != nil {
				t.Errorf("wipe %s: %v", old, err)
			}
			var primary int
			err = testenv.WaitFor(ctx, testenv.PatroniFailover(p), func() error {
				now, err := p.Status(ctx)
				switch {
				case err != nil:
					return err
				case now.Primary == st.Primary:
					return fmt.Errorf("%s is still the primary", old)
				case !now.HasSyncStandby():
					return fmt.Errorf("no streaming synchronous standby yet: %+v", now)
				}
				primary = now.Primary
				return nil
			})
			if err != nil {
				t.Errorf("failover: %v", err)
				return "no failover"
			}
			// The wiped member comes back as a new machine would: empty.
			if err := p.StartMember(st.Primary); err != nil {
				t.Errorf("start %s: %v", old, err)
				return "no rejoin"
			}
			err = testenv.WaitFor(ctx, testenv.PatroniRejoin(p), func() error {
				now, err := p.Status(ctx)
				if err == nil {
					if _, ok := now.Streaming[st.Primary]; !ok {
						err = fmt.Errorf("%s does not stream from the primary: %+v", old, now)
					}
				}
				return err
			})
			if err != nil {
				t.Errorf("rejoin: %v", err)
				return "no rejoin"
			}
			if stopped, err = firstCommitAfter(ctx, p.URL(), killed); err != nil {
				t.Errorf("commits after the kill: %v", err)
			}
			return fmt.Sprintf("primary %s SIGKILLed and its data deleted; %s promoted; commits stopped %s; %s rejoined as a standby from a base backup",
				old, p.Members[primary].Name, stopped.Round(100*time.Millisecond), old)
		})
		// The goal; capture must answer throughout.
		if stopped > 30*time.Second {
			t.Errorf("commits stopped for %s, want at most 30 s", stopped)
		}
		if r.Errors != 0 {
			t.Errorf("%d requests not answered 2xx while Postgres failed over, want 0: capture needs no Postgres", r.Errors)
		}
		t.Logf("%+v", r)
	})

	printTable(t)
}

// minUndrained is the backlog the shard node loss waits for on the shard
// before it dies: a second or two of the short load's entries there (ten
// times that at full size).
const minUndrained = 300

// firstCommitAfter is how long after killed the first order was committed,
// by Postgres's clock (this machine's).
func firstCommitAfter(ctx context.Context, url string, killed time.Time) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var first *time.Time
	if err := conn.QueryRow(ctx, "SELECT min(committed_at) FROM orders WHERE committed_at > $1", killed).Scan(&first); err != nil {
		return 0, err
	}
	if first == nil {
		return 0, fmt.Errorf("no order committed after %s", killed.Format("15:04:05.000"))
	}
	return first.Sub(killed), nil
}

// netns makes a network namespace joined to the host by a veth pair, on a
// /30 of 10.231.0.0/16 (test hosts of our own), and removes it at cleanup.
func netns(t *testing.T) *launcher.Netns {
	t.Helper()
	n := os.Getpid() % 16000
	ns := &launcher.Netns{Name: fmt.Sprintf("surge-chaos-%d", n), Worker: 1,
		HostIP: fmt.Sprintf("10.231.%d.%d", n/64, (n%64)*4+1), NsIP: fmt.Sprintf("10.231.%d.%d", n/64, (n%64)*4+2)}
	host, inner := fmt.Sprintf("sgh%d", n), fmt.Sprintf("sgn%d", n)
	sh := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	exec.Command("ip", "netns", "del", ns.Name).Run() // a leftover from an aborted run
	sh("netns", "add", ns.Name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns.Name).Run() })
	sh("link", "add", host, "type", "veth", "peer", "name", inner)
	sh("link", "set", inner, "netns", ns.Name)
	sh("addr", "add", ns.HostIP+"/30", "dev", host)
	sh("link", "set", host, "up")
	sh("-n", ns.Name, "addr", "add", ns.NsIP+"/30", "dev", inner)
	sh("-n", ns.Name, "link", "set", inner, "up")
	sh("-n", ns.Name, "link", "set", "lo", "up")
	return ns
}

func iptables(t *testing.T, ns *launcher.Netns, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, "iptables"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("iptables %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// defaultPollCount reads choice's count in the default poll from the
// result service, through the proxy.
func defaultPollCount(c *cluster, choice string) (int64, error) {
	resp, err := http.Get(c.URL + "/results/api/polls/" + surge.DefaultPollID)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("results: %s", resp.Status)
	}
	var res struct {
		Counts map[string]int64 `json:"counts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return 0, fmt.Errorf("results: %w", err)
	}
	return res.Counts[choice], nil
}

func shardsOf(c *cluster) redis.Shards {
	s := redis.Shards{Stream: redis.DefaultStream, Group: "workers"}
	for _, r := range c.Redis {
		s.Clients = append(s.Clients, redis.NewClient(redis.Config{Addr: r.Addr}, 1))
	}
	return s
}

func backlog(ctx context.Context, s redis.Shards) int64 {
	b, err := s.Backlog(ctx)
	if err != nil {
		return -1
	}
	var n int64
	for _, x := range b {
		n += x.Pending + x.Lag
	}
	return n
}

func setLast(r row) {
	tableMu.Lock()
	defer tableMu.Unlock()
	table[len(table)-1] = r
}

// printTable prints the figures and writes them to .surge/chaos.
func printTable(t *testing.T) {
	tableMu.Lock()
	defer tableMu.Unlock()
	var b strings.Builder
	mode := "make test (short)"
	if *full {
		mode = "make chaos (full)"
	}
	fmt.Fprintf(&b, "Chaos, %s, %s\n\n", mode, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintln(&b, "| schedule | votes acked | orders acked | lost | duplicated | oversold | unexpected | unknown | non-2xx | notes |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range table {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %s |\n", r.Schedule, r.VotesAcked, r.OrdersAcked,
			r.Lost, r.Duplicated, r.Oversold, r.Unexpected, r.Unknown, r.Errors, r.Notes)
	}
	t.Log("\n" + b.String())
	fmt.Println(b.String())
	dir := outDir(t)
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "table.md"), []byte(b.String()), 0o644)
	j, _ := json.MarshalIndent(table, "", "  ")
	os.WriteFile(filepath.Join(dir, "results.json"), j, 0o644)
}
