package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/loadgen"
	"github.com/surge-vote/surge/internal/surge"
)

// procs stops what a phase started, last started first.
type procs []*launcher.Proc

func (ps *procs) add(p *launcher.Proc) { *ps = append(*ps, p) }

func (ps procs) stop() {
	for i := len(ps) - 1; i >= 0; i-- {
		ps[i].Stop(15 * time.Second)
	}
}

// service starts one of the binaries on a free loopback port and waits for
// its health check. It returns the address and the process id.
func service(ctx context.Context, o options, ps *procs, name, binary string, args, env []string) (string, int, error) {
	port, err := launcher.FreePort()
	if err != nil {
		return "", 0, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if binary == "bare" {
		args = append(args, "--listen", addr)
	}
	p, err := launcher.StartProc(launcher.ProcSpec{Name: name, Path: filepath.Join(o.bin, binary), Args: args,
		Env: append([]string{"SURGE_LISTEN=" + addr, "SURGE_LOG_LEVEL=warn"}, env...),
		Log: filepath.Join(o.dir, "logs", name+".log")})
	if err != nil {
		return "", 0, err
	}
	ps.add(p)
	if err := launcher.WaitTCP(ctx, addr, p); err != nil {
		return "", 0, err
	}
	return addr, p.Pid(), launcher.WaitHealthy(ctx, http.DefaultClient, "http://"+addr+"/healthz", p)
}

func startRedis(ctx context.Context, o options, ps *procs, name string) (*launcher.Redis, error) {
	port, err := launcher.FreePort()
	if err != nil {
		return nil, err
	}
	r, err := launcher.StartRedis(ctx, name, filepath.Join(o.dir, name), port)
	if err != nil {
		return nil, err
	}
	ps.add(r.Proc)
	return r, nil
}

func cookieKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// webEnv is a capture frontend on its shard's Redis, without Postgres (the
// configured poll is enough to take votes).
func webEnv(redisAddr, key, node string) []string {
	return append([]string{"SURGE_REDIS_ADDR=" + redisAddr, "SURGE_COOKIE_KEYS=" + key, "SURGE_NODE=" + node}, benchLimits...)
}

// benchLimits lift the limit on new voters per client address: all the
// load comes from one loopback address, where real voters come from many,
// and with it nearly every vote would be a 429. The per-voter limit stays
// (the load tool has 20,000 voters, each well under it).
var benchLimits = []string{"SURGE_NEW_VOTERS_PER_IP=0"}

// load runs the load tool unpaced (as fast as o.conns connections go) or
// at a rate, votes only, and returns its report. Its text goes to the log.
func load(ctx context.Context, o options, target string, rate float64, d time.Duration, name string) (*loadgen.Report, error) {
	cfg := loadgen.DefaultConfig()
	cfg.Target, cfg.Rate, cfg.Duration, cfg.MaxRequests = target, rate, d, 50_000_000
	cfg.Connections, cfg.Timeout = o.conns, 10*time.Second
	if rate > 0 {
		// A paced load keeps its rate through a slow spell with more
		// requests in flight (vegeta adds workers up to this bound).
		cfg.Connections = max(o.conns, 512)
	}
	cfg.Voters, cfg.ChangeRatio = 20_000, 0.3
	cfg.Poll, cfg.Choices = "cats-vs-dogs", []string{"cats", "dogs"}
	cfg.OrderRatio, cfg.AdminPass = 0, ""
	cfg.JSONPath, cfg.PlotPath = "", ""
	f, err := os.Create(filepath.Join(o.dir, "logs", "load-"+name+".txt"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return loadgen.Run(ctx, cfg, f)
}

// alternate measures a and b round by round, swapping which goes first
// each round so that a drift of the machine hits both alike.
func alternate(ctx context.Context, o options, label string, a, b func(round int) (float64, error)) (as, bs []float64, err error) {
	for i := range o.rounds {
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		x, err := first(i)
		if err != nil {
			return nil, nil, err
		}
		y, err := second(i)
		if err != nil {
			return nil, nil, err
		}
		if i%2 == 1 {
			x, y = y, x
		}
		as, bs = append(as, x), append(bs, y)
		say(o, "  %s round %d: %.0f/s vs %.0f/s = %.3f", label, i+1, x, y, x/y)
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
	}
	return as, bs, nil
}

// side is one side of a comparison: its processes, whose CPU per
// acknowledged request is recorded round by round, and its error count.
type side struct {
	pids   map[string][]int
	cpu    map[string][]float64
	errors int64
}

func newSide(pids map[string][]int) *side { return &side{pids: pids, cpu: map[string][]float64{}} }

func (s *side) figures() map[string]Figure { return figures("µs", s.cpu) }

// throughput is a measurement function: a warm-up of a second, then the
// load tool as fast as it goes for o.measure; acknowledged requests per second.
func throughput(ctx context.Context, o options, target, name string, s *side) func(int) (float64, error) {
	return func(round int) (float64, error) {
		if _, err := load(ctx, o, target, 0, time.Second, fmt.Sprintf("%s-%d-warmup", name, round+1)); err != nil {
			return 0, err
		}
		m := meterCPU(s.pids)
		rep, err := load(ctx, o, target, 0, o.measure, fmt.Sprintf("%s-%d", name, round+1))
		if err != nil {
			return 0, err
		}
		if rep.Summary.OK == 0 {
			return 0, fmt.Errorf("%s: nothing acknowledged (%v)", name, rep.Summary.ByClass)
		}
		s.errors += rep.Summary.Errors
		for k, v := range m.perRequest(rep.Summary.OK) {
			s.cpu[k] = append(s.cpu[k], v)
		}
		return rep.Summary.OKRate, nil
	}
}

// benchCapture: one frontend and its Redis (AOF always) against a bare Gin
// handler, same load tool, same connections; then redis-benchmark XADD.
func benchCapture(ctx context.Context, o options, res *Results) error {
	var ps procs
	defer ps.stop()
	r, err := startRedis(ctx, o, &ps, "capture-redis")
	if err != nil {
		return err
	}
	web, webPid, err := service(ctx, o, &ps, "capture-web", "web", nil, webEnv(r.Addr, cookieKey(), "bench-web"))
	if err != nil {
		return err
	}
	bare, barePid, err := service(ctx, o, &ps, "capture-bare", "bare", nil, nil)
	if err != nil {
		return err
	}
	c := &res.Capture
	ws, bs := newSide(map[string][]int{"web": {webPid}, "redis": {r.Pid()}}), newSide(map[string][]int{"bare": {barePid}})
	webs, bares, err := alternate(ctx, o, "capture: web+redis vs bare", throughput(ctx, o, "http://"+web, "capture-web", ws),
		throughput(ctx, o, "http://"+bare, "capture-bare", bs))
	if err != nil {
		return err
	}
	c.Web, c.Bare, c.Errors = figure("/s", webs), figure("/s", bares), ws.errors
	c.CPUWeb, c.CPUBare = ws.figures(), bs.figures()

	// The Redis ceiling for the same entry, with and without pipelining.
	// The entry a frontend writes for a vote.
	var entry []string
	for _, f := range surge.EncodeVote(surge.Vote{ID: "01JC0000000000000000000000", Poll: "cats-vs-dogs", Choice: "cats",
		Voter: "0123456789abcdef0123456789abcdef", Version: 1763779200000000, Node: "bench-web",
		At: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)}) {
		entry = append(entry, f.(string))
	}
	var p1, p16 []float64
	for i := range o.rounds {
		for _, p := range []struct {
			pipeline, n int
			into        *[]float64
		}{{1, 150_000, &p1}, {16, 1_000_000, &p16}} {
			rps, err := redisBenchmark(ctx, r.Addr, p.pipeline, p.n, entry)
			if err != nil {
				return err
			}
			*p.into = append(*p.into, rps)
			say(o, "  redis-benchmark XADD -P %d round %d: %.0f/s", p.pipeline, i+1, rps)
		}
	}
	c.RedisP1, c.RedisP16 = figure("/s", p1), figure("/s", p16)
	return nil
}

// redisBenchmark runs redis-benchmark's XADD against addr and returns its
// requests per second.
func redisBenchmark(ctx context.Context, addr string, pipeline, n int, entry []string) (float64, error) {
	bin, err := launcher.LookBinary("redis-benchmark")
	if err != nil {
		return 0, fmt.Errorf("%w (apt-get install redis-tools)", err)
	}
	host, port, _ := strings.Cut(addr, ":")
	args := append([]string{"-h", host, "-p", port, "-c", "50", "-n", strconv.Itoa(n), "-P", strconv.Itoa(pipeline),
		"--csv", "XADD", "bench:xadd", "*"}, entry...)
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %w", err)
	}
	// The last line is "<command>",rps,avg,min,p50,p95,p99,max; the command
	// itself is not escaped, so count fields from the end.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	fields := strings.Split(lines[len(lines)-1], ",")
	if len(lines) < 2 || len(fields) < 8 {
		return 0, fmt.Errorf("redis-benchmark: unexpected output %q", out)
	}
	rps, err := strconv.ParseFloat(strings.Trim(fields[len(fields)-7], `"`), 64)
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: unexpected output %q", out)
	}
	// Leave the shard as it was.
	if cli, err := launcher.LookBinary("redis-cli"); err == nil {
		exec.CommandContext(ctx, cli, "-h", host, "-p", port, "DEL", "bench:xadd").Run()
	}
	return rps, nil
}

// benchHAProxy: two frontends with their Redis behind HAProxy, against two
// bare Gin handlers behind HAProxy with the same configuration.
func benchHAProxy(ctx context.Context, o options, res *Results) error {
	var ps procs
	defer ps.stop()
	key := cookieKey()
	var webs, bares []string
	ws, bs := newSide(map[string][]int{}), newSide(map[string][]int{})
	for i := range 2 {
		r, err := startRedis(ctx, o, &ps, fmt.Sprintf("haproxy-redis-%d", i+1))
		if err != nil {
			return err
		}
		w, wp, err := service(ctx, o, &ps, fmt.Sprintf("haproxy-web-%d", i+1), "web", nil, webEnv(r.Addr, key, fmt.Sprintf("web-%d", i+1)))
		if err != nil {
			return err
		}
		b, bp, err := service(ctx, o, &ps, fmt.Sprintf("haproxy-bare-%d", i+1), "bare", nil, nil)
		if err != nil {
			return err
		}
		webs, bares = append(webs, w), append(bares, b)
		ws.pids["web"], ws.pids["redis"] = append(ws.pids["web"], wp), append(ws.pids["redis"], r.Pid())
		bs.pids["bare"] = append(bs.pids["bare"], bp)
	}
	front := func(name string, servers []string, s *side) (string, error) {
		port, err := launcher.FreePort()
		if err != nil {
			return "", err
		}
		dir := filepath.Join(o.dir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		bind := "127.0.0.1:" + strconv.Itoa(port)
		// The launcher's configuration (the one `make run` uses), with only
		// the web servers changed.
		p, err := launcher.StartHAProxy(ctx, dir, launcher.HAProxyConfig{Bind: bind, Web: servers, Result: servers})
		if err != nil {
			return "", err
		}
		ps.add(p)
		s.pids["haproxy"] = []int{p.Pid()}
		return "http://" + bind, launcher.WaitHealthy(ctx, http.DefaultClient, "http://"+bind+"/healthz", p)
	}
	webFront, err := front("haproxy-web", webs, ws)
	if err != nil {
		return err
	}
	bareFront, err := front("haproxy-bare", bares, bs)
	if err != nil {
		return err
	}
	h := &res.HAProxy
	w, b, err := alternate(ctx, o, "haproxy: 2 web+redis vs 2 bare", throughput(ctx, o, webFront, "haproxy-web", ws),
		throughput(ctx, o, bareFront, "haproxy-bare", bs))
	if err != nil {
		return err
	}
	h.Web, h.Bare, h.Errors = figure("/s", w), figure("/s", b), ws.errors
	h.CPUWeb, h.CPUBare = ws.figures(), bs.figures()
	return nil
}
