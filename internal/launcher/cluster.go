package launcher

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Options describe a local pipeline.
type Options struct {
	Dir     string // state: data, logs, generated config (e.g. .surge)
	BinDir  string // holds the web, worker and result binaries
	Port    int    // HAProxy's front port; 0 picks a free one
	Shards  int    // capture shards: one Redis and one web each
	Workers int    // workers, each draining every shard
	// PostgresMembers above 1 runs Postgres as that many members under
	// Patroni (StartPatroni), each client reaching the primary through a
	// multi-host URL; 0 or 1 runs one Postgres.
	PostgresMembers int
	WorkerEnv       []string // extra environment for workers (tests shorten claim_idle)
	WebEnv          []string // extra environment for web instances
	RatePerIP       int      // HAProxy's per-address limit over 10 s; 0: none
	TLS             bool     // also serve HTTPS with a generated self-signed certificate
	// HAProxy's connection caps (see HAProxyConfig); 0: DefaultMaxConn, and
	// no cap per address or on streams. `stack run` sets the defaults.
	MaxConn, ConnPerIP, StreamsPerResult int
	// Netns, if set, runs one worker inside a network namespace, so a test
	// can cut it off from Postgres or a shard.
	Netns *Netns
}

// Netns is a network namespace made by the caller, joined to the host by a
// veth pair: the host side has HostIP, the namespace side NsIP.
type Netns struct {
	Name         string
	HostIP, NsIP string
	Worker       int // index of the worker to run inside
}

// Service is a running surge service.
type Service struct {
	*Proc
	Addr string
	spec ProcSpec
}

// Cluster is a running pipeline.
type Cluster struct {
	URL      string
	Postgres *Postgres // nil with Patroni
	Patroni  *Patroni  // nil with one Postgres
	Redis    []*Redis
	Web      []*Service
	Workers  []*Service
	Result   *Service
	Admin    *Service
	HAProxy  *Proc
	// Stats is HAProxy's statistics page (host:port): see InRotation.
	Stats string
	// TLSURL and CACert are set when TLS is on; CACert is the PEM that
	// clients trust.
	TLSURL string
	CACert []byte
	// AdminUser and AdminPassword are the generated admin credentials.
	AdminUser, AdminPassword string
	opt                      Options
	server                   map[*Service]string // HAProxy's "backend/server" for each service
}

// Up starts the whole pipeline and waits until HAProxy sees every web
// instance healthy. On error, whatever started is stopped.
func Up(ctx context.Context, opt Options) (_ *Cluster, err error) {
	if opt.Shards <= 0 || opt.Workers <= 0 {
		return nil, errors.New("need at least one shard and one worker")
	}
	if opt.Dir, err = filepath.Abs(opt.Dir); err != nil {
		return nil, err
	}
	if err := checkPostgresKind(opt.Dir, opt.PostgresMembers); err != nil {
		return nil, err
	}
	logs := filepath.Join(opt.Dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{opt: opt}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	keyFile, err := secretFile(filepath.Join(opt.Dir, "cookie.key"))
	if err != nil {
		return nil, err
	}
	adminFile := filepath.Join(opt.Dir, "admin.password")
	adminPassword, err := secret(adminFile)
	if err != nil {
		return nil, err
	}
	c.AdminUser, c.AdminPassword = "admin", adminPassword

	var extra []string
	if opt.Netns != nil {
		extra = []string{opt.Netns.HostIP}
	}
	var pgURL string
	if opt.PostgresMembers > 1 {
		if opt.Netns != nil {
			return nil, errors.New("a network namespace with Patroni: not supported")
		}
		if c.Patroni, err = StartPatroni(ctx, filepath.Join(opt.Dir, "patroni"), PatroniOptions{Members: opt.PostgresMembers}); err != nil {
			return nil, err
		}
		pgURL = c.Patroni.URL()
	} else {
		pgPort, err := FreePort()
		if err != nil {
			return nil, err
		}
		if c.Postgres, err = StartPostgres(ctx, filepath.Join(opt.Dir, "postgres"), pgPort, extra...); err != nil {
			return nil, err
		}
		pgURL = c.Postgres.URL
	}
	var shardAddrs []string
	for i := range opt.Shards {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		r, err := StartRedis(ctx, fmt.Sprintf("redis-%d", i+1), filepath.Join(opt.Dir, fmt.Sprintf("redis-%d", i+1)), port, extra...)
		if err != nil {
			return nil, err
		}
		c.Redis = append(c.Redis, r)
		shardAddrs = append(shardAddrs, r.Addr)
	}

	pgEnv := "SURGE_POSTGRES_URL=" + pgURL
	shardsEnv := "SURGE_SHARDS=" + strings.Join(shardAddrs, ",")
	result, err := c.startService(ctx, "result", "result", []string{pgEnv, shardsEnv})
	if err != nil {
		return nil, err
	}
	c.Result = result
	for i := range opt.Workers {
		name := fmt.Sprintf("worker-%d", i+1)
		env := append([]string{pgEnv, "SURGE_NAME=" + name, shardsEnv}, opt.WorkerEnv...)
		var w *Service
		if ns := opt.Netns; ns != nil && ns.Worker == i {
			// Inside the namespace, everything is reached at the host's veth address.
			env = append(env, "SURGE_POSTGRES_URL="+strings.Replace(pgURL, "127.0.0.1", ns.HostIP, 1),
				"SURGE_SHARDS="+strings.ReplaceAll(strings.Join(shardAddrs, ","), "127.0.0.1", ns.HostIP))
			w, err = c.startServiceIn(ctx, name, "worker", env, ns)
		} else {
			w, err = c.startService(ctx, name, "worker", env)
		}
		if err != nil {
			return nil, err
		}
		c.Workers = append(c.Workers, w)
	}
	for i, r := range c.Redis {
		// Each frontend writes every entry to two shards (copies), its own
		// and the next one up, so it knows them all.
		env := append([]string{"SURGE_REDIS_ADDR=" + r.Addr, shardsEnv, "SURGE_SHARD=" + strconv.Itoa(i+1),
			"SURGE_COOKIE_KEYS_FILE=" + keyFile, pgEnv, "SURGE_NODE=" + fmt.Sprintf("web-%d", i+1)}, opt.WebEnv...)
		w, err := c.startService(ctx, fmt.Sprintf("web-%d", i+1), "web", env)
		if err != nil {
			return nil, err
		}
		c.Web = append(c.Web, w)
	}

	if c.Admin, err = c.startService(ctx, "admin", "web", []string{"SURGE_MODE=admin", pgEnv, "SURGE_NODE=admin-1",
		"SURGE_ADMIN_USER=" + c.AdminUser, "SURGE_ADMIN_PASSWORD_FILE=" + adminFile}); err != nil {
		return nil, err
	}

	port := opt.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	hc := HAProxyConfig{Bind: addr(port), Result: []string{c.Result.Addr}, Admin: []string{c.Admin.Addr}, RatePerIP: opt.RatePerIP,
		MaxConn: opt.MaxConn, ConnPerIP: opt.ConnPerIP, StreamsPerResult: opt.StreamsPerResult}
	if opt.TLS {
		tlsPort, err := FreePort()
		if err != nil {
			return nil, err
		}
		hc.TLSBind = addr(tlsPort)
		if hc.TLSCert, c.CACert, err = SelfSignedCert(opt.Dir); err != nil {
			return nil, err
		}
		c.TLSURL = "https://" + hc.TLSBind
	}
	statsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	hc.StatsBind, c.Stats = addr(statsPort), addr(statsPort)
	// The server names RenderHAProxy gives.
	c.server = map[*Service]string{c.Result: "result/result0", c.Admin: "admin/admin0"}
	for i, w := range c.Web {
		hc.Web = append(hc.Web, w.Addr)
		c.server[w] = "web/web" + strconv.Itoa(i)
	}
	if c.HAProxy, err = StartHAProxy(ctx, opt.Dir, hc); err != nil {
		return nil, err
	}
	c.URL = "http://" + addr(port)
	if err := c.waitHealthy(ctx); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(c.Addresses(), "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(opt.Dir, AddressesFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

// checkPostgresKind refuses a state directory whose Postgres data is of
// the other kind: a single Postgres (postgres/) when Patroni members are
// asked for, or a Patroni cluster (patroni/) when one Postgres is. Started
// anyway, the pipeline would run on an empty database beside the old one,
// whose votes and orders it would never see, while the Redis AOFs it
// replays are shared.
func checkPostgresKind(dir string, members int) error {
	single, patroni := filepath.Join(dir, "postgres"), filepath.Join(dir, "patroni")
	has := func(path string) bool { _, err := os.Stat(path); return err == nil }
	switch {
	case members > 1 && has(filepath.Join(single, "PG_VERSION")):
		return fmt.Errorf("%s holds the data of a single Postgres (from a run before Postgres ran as %d Patroni members), "+
			"which is not carried over: start with --postgres-members 1 (make run ARGS='--postgres-members 1') to keep using it, "+
			"or run `make clean` (it deletes %s: votes, orders, items) to start afresh on Patroni", single, members, dir)
	case members <= 1 && has(filepath.Join(patroni, patroniLayoutFile)):
		members := patroniMembersIn(patroni)
		return fmt.Errorf("%s holds a Patroni cluster's data: start with --postgres-members %s (make run ARGS='--postgres-members %[2]s') "+
			"to keep using it, or run `make clean` (it deletes %s) to start afresh on a single Postgres", patroni, members, dir)
	}
	return nil
}

// patroniMembersIn says how many members the cluster kept in dir has ("N"
// if its layout cannot be read).
func patroniMembersIn(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, patroniLayoutFile))
	var l patroniLayout
	if err != nil || json.Unmarshal(b, &l) != nil {
		return "N"
	}
	return strconv.Itoa(len(l.Members))
}

// AddressesFile, in the state directory, holds the running pipeline's
// Addresses while it is up: `stack status` reads it.
const AddressesFile = "addresses.json"

// Addresses are where each surge service of a pipeline answers (host:port):
// its /healthz and /metrics.
type Addresses struct {
	Web     []string `json:"web"`
	Workers []string `json:"workers"`
	Result  []string `json:"result"`
	Admin   []string `json:"admin"`
}

// Addresses returns where each service answers.
func (c *Cluster) Addresses() Addresses {
	a := Addresses{Result: []string{c.Result.Addr}, Admin: []string{c.Admin.Addr}}
	for _, w := range c.Web {
		a.Web = append(a.Web, w.Addr)
	}
	for _, w := range c.Workers {
		a.Workers = append(a.Workers, w.Addr)
	}
	return a
}

// ReadAddresses reads the Addresses a running pipeline wrote in dir.
func ReadAddresses(dir string) (Addresses, error) {
	var a Addresses
	b, err := os.ReadFile(filepath.Join(dir, AddressesFile))
	if errors.Is(err, os.ErrNotExist) {
		return a, fmt.Errorf("no pipeline is running from %s (no %s): start one with make run", dir, AddressesFile)
	}
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("%s: %w", filepath.Join(dir, AddressesFile), err)
	}
	return a, nil
}

// startService starts a surge binary listening on a free port.
func (c *Cluster) startService(ctx context.Context, name, binary string, env []string) (*Service, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	spec := ProcSpec{Name: name, Path: filepath.Join(c.opt.BinDir, binary),
		Log: filepath.Join(c.opt.Dir, "logs", name+".log"),
		Env: append([]string{"SURGE_LISTEN=" + addr(port)}, env...)}
	p, err := StartProc(spec)
	if err != nil {
		return nil, err
	}
	s := &Service{Proc: p, Addr: addr(port), spec: spec}
	if err := WaitTCP(ctx, s.Addr, p); err != nil {
		p.Kill()
		return nil, fmt.Errorf("%w\n%s", err, tail(spec.Log, 3000))
	}
	return s, nil
}

// startServiceIn starts a surge binary inside a network namespace,
// listening on the namespace's address.
func (c *Cluster) startServiceIn(ctx context.Context, name, binary string, env []string, ns *Netns) (*Service, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	ip, err := LookBinary("ip")
	if err != nil {
		return nil, err
	}
	listen := ns.NsIP + ":" + strconv.Itoa(port)
	spec := ProcSpec{Name: name, Path: ip, Args: []string{"netns", "exec", ns.Name, filepath.Join(c.opt.BinDir, binary)},
		Log: filepath.Join(c.opt.Dir, "logs", name+".log"),
		Env: append(env, "SURGE_LISTEN="+listen)} // later entries win
	p, err := StartProc(spec)
	if err != nil {
		return nil, err
	}
	s := &Service{Proc: p, Addr: listen, spec: spec}
	if err := WaitTCP(ctx, s.Addr, p); err != nil {
		p.Kill()
		return nil, fmt.Errorf("%w\n%s", err, tail(spec.Log, 3000))
	}
	return s, nil
}

// Restart starts a stopped or killed service again with the same settings.
func (c *Cluster) Restart(ctx context.Context, s *Service) error {
	<-s.Done()
	p, err := StartProc(s.spec)
	if err != nil {
		return err
	}
	s.Proc = p
	return WaitTCP(ctx, s.Addr, p)
}

// RestartPostgres starts Postgres again on its data and port, after a stop.
func (c *Cluster) RestartPostgres(ctx context.Context) error {
	<-c.Postgres.Done()
	pg, err := StartPostgres(ctx, c.Postgres.Dir, c.Postgres.Port, c.Postgres.Extra...)
	if err != nil {
		return err
	}
	c.Postgres = pg
	return nil
}

// RestartRedis starts shard i's Redis again on its port and AOF.
func (c *Cluster) RestartRedis(ctx context.Context, i int) error {
	old := c.Redis[i]
	<-old.Done()
	_, port, _ := strings.Cut(old.Addr, ":")
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	r, err := StartRedis(ctx, old.Name, old.Dir, p, old.Extra...)
	if err != nil {
		return err
	}
	c.Redis[i] = r
	return nil
}

// waitHealthy waits until every web instance and the result and admin
// services answer their health checks, then until HAProxy has each in
// rotation (its health check passed `rise` times) and answers through its
// front door.
func (c *Cluster) waitHealthy(ctx context.Context) error {
	services := append([]*Service{c.Result, c.Admin}, c.Web...)
	for _, s := range services {
		if err := WaitHealthy(ctx, http.DefaultClient, "http://"+s.Addr+"/healthz", s.Proc); err != nil {
			return err
		}
	}
	for _, s := range services {
		err := waitReady(ctx, c.HAProxy, healthyReady, func(ctx context.Context) error { return c.InRotation(ctx, s) })
		if err != nil {
			return fmt.Errorf("wait for %s to be in rotation: %w", s.Name, err)
		}
	}
	client, front := http.DefaultClient, c.URL
	if c.TLSURL != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(c.CACert)
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		front = c.TLSURL
	}
	return WaitHealthy(ctx, client, front+"/healthz", c.HAProxy)
}

// ProxyState is s's state in HAProxy: "UP", "DOWN", "UP 1/2" (going
// down), "DOWN 1/2" (coming back), …
func (c *Cluster) ProxyState(ctx context.Context, s *Service) (string, error) {
	states, err := ServerStates(ctx, c.Stats)
	if err != nil {
		return "", err
	}
	state, ok := states[c.server[s]]
	if !ok {
		return "", fmt.Errorf("haproxy has no server for %s", s.Name)
	}
	return state, nil
}

// InRotation returns nil if HAProxy sends requests to s, and otherwise an
// error that says s's state.
func (c *Cluster) InRotation(ctx context.Context, s *Service) error {
	state, err := c.ProxyState(ctx, s)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(state, "UP") {
		return fmt.Errorf("%s is out of HAProxy's rotation: %s", s.Name, state)
	}
	return nil
}

// Stop stops everything in order: the front door first, so no request
// arrives at a stopping frontend, then the frontends (which answer their
// in-flight requests), the workers (which finish their batches), the
// result service, and the stores last.
func (c *Cluster) Stop() error {
	var errs []error
	if c.opt.Dir != "" {
		os.Remove(filepath.Join(c.opt.Dir, AddressesFile))
	}
	stop := func(p *Proc) {
		if p != nil {
			if err := p.Stop(15 * time.Second); err != nil && !isSignalExit(err) {
				errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
			}
		}
	}
	stop(c.HAProxy)
	for _, w := range c.Web {
		stop(w.Proc)
	}
	for _, w := range c.Workers {
		stop(w.Proc)
	}
	for _, s := range []*Service{c.Admin, c.Result} {
		if s != nil {
			stop(s.Proc)
		}
	}
	for _, r := range c.Redis {
		stop(r.Proc)
	}
	if c.Postgres != nil {
		if err := c.Postgres.Stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Patroni != nil {
		c.Patroni.Close()
	}
	return errors.Join(errs...)
}

// isSignalExit reports an exit caused by a signal we sent on purpose
// (a killed process, or HAProxy/Redis exiting on SIGTERM with a status).
func isSignalExit(err error) bool {
	return strings.Contains(err.Error(), "signal: killed") || strings.Contains(err.Error(), "signal: terminated")
}

// secretFile returns path, creating it with a random key if it is missing.
func secretFile(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.WriteFile(path, []byte(randomHex(32)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// secret returns the key kept in path, generated (secretFile) if missing.
func secret(path string) (string, error) {
	if _, err := secretFile(path); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// randomHex returns n random bytes in hex: keys, passwords, tokens.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
