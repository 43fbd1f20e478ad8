package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"
)

// PatroniOptions shape a Patroni cluster.
type PatroniOptions struct {
	// Members is the number of Postgres members, at least 2: in strict
	// synchronous mode a primary without a synchronous standby commits
	// nothing.
	Members int
	// Patroni's timing, in seconds: the leader lock lives TTL after its
	// holder last renewed it, every member runs its loop every LoopWait,
	// and a failing DCS or Postgres call is retried for RetryTimeout.
	// 0 picks 10, 2 and 4, short enough for tests; Patroni needs
	// LoopWait + 2 × RetryTimeout ≤ TTL.
	TTL, LoopWait, RetryTimeout int
}

func (o *PatroniOptions) defaults() {
	if o.TTL <= 0 {
		o.TTL = 10
	}
	if o.LoopWait <= 0 {
		o.LoopWait = 2
	}
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = 4
	}
}

// Patroni is a private Postgres cluster that fails over by itself: one
// Patroni process per member, each running its own Postgres, with the
// leader lock in a private 3-member etcd. A commit returns only once a
// synchronous standby has it (synchronous_mode_strict), Patroni promotes
// only that standby, and an old primary rejoins through pg_rewind.
type Patroni struct {
	Etcd     *Etcd
	Members  []*PatroniMember
	User     string // the superuser, with Password; clients use URL
	Password string
	Database string

	opt    PatroniOptions
	bin    string // patroni
	dir    string
	cred   *syscall.Credential
	client *http.Client
	mu     sync.Mutex // guards each member's proc
}

// PatroniMember is one Postgres server and the Patroni process that runs it.
type PatroniMember struct {
	Name    string // Patroni's name for it, and its application_name on the primary
	Port    int    // Postgres
	API     string // Patroni's REST API, host:port
	DataDir string
	Log     string // Patroni's log, with Postgres's start-up lines
	Config  string // Patroni's configuration (patronictl -c Config list)
	proc    *Proc  // nil while the member is down
}

// patroniReady bounds a fresh cluster's start on a loaded 2-core machine:
// initdb with checksums on the first member, then a base backup for each
// other one, and a synchronous standby chosen (a few loops).
const patroniReady = 3 * time.Minute

// StartPatroni starts etcd and opt.Members Patroni members with their state
// under dir, waits for a primary with a synchronous standby, and creates
// the surge database if it is missing. As root, Patroni and Postgres run as
// the postgres user. On error, whatever started is stopped.
//
// Started again on the same dir (after Close), it resumes the same
// cluster: etcd's and every member's data, the same ports and passwords
// (kept in dir, see patroniLayout and patroniSecrets).
func StartPatroni(ctx context.Context, dir string, opt PatroniOptions) (_ *Patroni, err error) {
	opt.defaults()
	if opt.Members < 2 {
		return nil, errors.New("patroni: need at least 2 members (strict synchronous mode)")
	}
	bin, err := LookBinary("patroni")
	if err != nil {
		return nil, err
	}
	binDir, dir, cred, err := postgresSetup(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("patroni dir: %w", err)
	}
	layout, err := patroniLayoutIn(dir, opt.Members, 3)
	if err != nil {
		return nil, err
	}
	pw, err := patroniSecretsIn(dir)
	if err != nil {
		return nil, err
	}
	p := &Patroni{User: "surge", Password: pw.superuser, Database: "surge", opt: opt, bin: bin, dir: dir, cred: cred,
		client: &http.Client{Timeout: 2 * time.Second}}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.Etcd, err = StartEtcd(ctx, dir, layout.Etcd, layout.EtcdToken); err != nil {
		return nil, err
	}
	for i, ports := range layout.Members {
		m, err := p.newMember(i, ports, binDir, pw)
		if err != nil {
			return nil, err
		}
		p.Members = append(p.Members, m)
	}
	for i := range p.Members {
		if err := p.StartMember(i); err != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, patroniReady)
	defer cancel()
	primary, err := p.WaitSyncStandby(wctx)
	if err != nil {
		return nil, fmt.Errorf("start patroni: %w\n%s", err, tail(p.Members[0].Log, 2000))
	}
	if err := p.createDatabase(ctx, primary); err != nil {
		return nil, err
	}
	// pgx tries the next host of a multi-host URL after most errors, but
	// not after "database does not exist": wait until every standby has
	// replayed the creation.
	for i := range p.Members {
		err := waitReady(wctx, p.Members[i].proc, patroniReady, func(ctx context.Context) error {
			c, err := pgx.Connect(ctx, p.MemberURL(i))
			if err == nil {
				c.Close(ctx)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("start patroni: %s: %w", p.Members[i].Name, err)
		}
	}
	return p, nil
}

// createDatabase creates the surge database on the primary, unless an
// earlier start did.
func (p *Patroni) createDatabase(ctx context.Context, primary int) error {
	conn, err := pgx.Connect(ctx, p.memberURL(primary, "postgres"))
	if err != nil {
		return fmt.Errorf("start patroni: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", p.Database).Scan(&exists); err != nil {
		return fmt.Errorf("start patroni: look for database %s: %w", p.Database, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+p.Database); err != nil {
		return fmt.Errorf("start patroni: create database: %w", err)
	}
	return nil
}

// patroniSecrets are the passwords of a cluster's roles. Patroni creates
// the roles once, when it bootstraps the cluster, so a restart must give
// it the same ones: each is kept in a file of its own (0600) in the
// cluster's directory, generated at the first start.
type patroniSecrets struct{ superuser, replication, rewind string }

func patroniSecretsIn(dir string) (patroniSecrets, error) {
	var s patroniSecrets
	for _, f := range []struct {
		name string
		into *string
	}{{"superuser.password", &s.superuser}, {"replication.password", &s.replication}, {"rewind.password", &s.rewind}} {
		var err error
		if *f.into, err = secret(filepath.Join(dir, f.name)); err != nil {
			return s, fmt.Errorf("patroni: %w", err)
		}
	}
	return s, nil
}

func (p *Patroni) newMember(i int, ports MemberPorts, binDir string, pw patroniSecrets) (*PatroniMember, error) {
	pgPort, apiPort := ports.Postgres, ports.API
	name := fmt.Sprintf("pg%d", i+1)
	home := filepath.Join(p.dir, name)
	m := &PatroniMember{Name: name, Port: pgPort, API: addr(apiPort), DataDir: filepath.Join(home, "data"),
		Log: filepath.Join(p.dir, name+".log"), Config: filepath.Join(home, "patroni.yml")}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("patroni %s: %w", name, err)
	}
	ttl, loop, retry := p.opt.TTL, p.opt.LoopWait, p.opt.RetryTimeout
	conf := map[string]any{
		"scope": "surge",
		"name":  name,
		"log":   map[string]any{"level": "INFO"},
		"restapi": map[string]any{
			"listen": m.API, "connect_address": m.API,
		},
		"etcd3": map[string]any{"hosts": p.Etcd.Clients},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl": ttl, "loop_wait": loop, "retry_timeout": retry,
				// Only a standby that has every acknowledged commit may be
				// promoted, and with none the primary commits nothing.
				"synchronous_mode": true, "synchronous_mode_strict": true,
				// Every standby is synchronous: Patroni 3.0 promotes only a
				// synchronous standby, and none that another member is ahead
				// of, so an asynchronous one ahead would block the failover.
				"synchronous_node_count": p.opt.Members - 1,
				// The synchronous standby has every commit; WAL past the last
				// commit (a batch in flight) must not stop its promotion.
				"maximum_lag_on_failover": 64 << 20,
				"postgresql": map[string]any{
					"use_pg_rewind": true,
					"use_slots":     true,
					"parameters":    map[string]any{"max_connections": 300, "wal_keep_size": "128MB"},
				},
			},
			"initdb": []any{map[string]any{"encoding": "UTF8"}, map[string]any{"locale": "C.UTF-8"}, "data-checksums"},
			"pg_hba": []string{
				"local all all trust",
				"host replication replicator 127.0.0.1/32 scram-sha-256",
				"host all all 127.0.0.1/32 scram-sha-256",
			},
		},
		"postgresql": map[string]any{
			"listen":          addr(pgPort),
			"connect_address": addr(pgPort),
			"data_dir":        m.DataDir,
			"bin_dir":         binDir,
			"pgpass":          filepath.Join(home, "pgpass"),
			"authentication": map[string]any{
				"superuser":   map[string]any{"username": p.User, "password": p.Password},
				"replication": map[string]any{"username": "replicator", "password": pw.replication},
				"rewind":      map[string]any{"username": "rewinder", "password": pw.rewind},
			},
			"parameters": map[string]any{"unix_socket_directories": home},
			// A new standby's base backup starts at once, not after a
			// spread checkpoint (a minute and more).
			"basebackup": []any{map[string]any{"checkpoint": "fast"}},
		},
	}
	b, err := yaml.Marshal(conf)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(m.Config, b, 0o600); err != nil {
		return nil, fmt.Errorf("patroni %s: %w", name, err)
	}
	if p.cred != nil {
		for _, path := range []string{home, m.Config} {
			if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
				return nil, fmt.Errorf("patroni %s: %w", name, err)
			}
		}
	}
	return m, nil
}

// StartMember starts member i's Patroni, which starts its Postgres: as a
// standby if another member holds the leader lock (after pg_rewind if it
// was a primary, after a base backup if its data is gone). It does not
// wait for the member to rejoin: see Status.
func (p *Patroni) StartMember(i int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.Members[i]
	if m.proc != nil {
		return fmt.Errorf("patroni %s is running", m.Name)
	}
	home := filepath.Dir(m.Config)
	proc, err := StartProc(ProcSpec{Name: "patroni " + m.Name, Path: p.bin, Args: []string{m.Config}, Log: m.Log,
		Cred: p.cred, Dir: home, Env: []string{"HOME=" + home}})
	if err != nil {
		return err
	}
	m.proc = proc
	return nil
}

// KillMember SIGKILLs member i's Patroni and its Postgres, postmaster and
// backends alike, as when its machine dies.
func (p *Patroni) KillMember(i int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.Members[i]
	if m.proc != nil {
		_ = syscall.Kill(-m.proc.Pid(), syscall.SIGKILL) // its process group
		<-m.proc.Done()
		m.proc = nil
	}
	return signalPostgres(m.DataDir, syscall.SIGKILL)
}

// CutReplication stops (SIGSTOP) the WAL senders of member i, a primary,
// as if its link to every standby failed: what it writes from then on
// reaches no standby, and its commits wait for one. It returns once every
// sender is stopped. Only KillMember ends it.
func (p *Patroni) CutReplication(i int) error {
	pid, err := postmaster(p.Members[i].DataDir)
	if err != nil || pid == 0 {
		return fmt.Errorf("cut replication of %s: postmaster: %v", p.Members[i].Name, err)
	}
	var senders []int
	for _, c := range children(pid) {
		if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c)); strings.Contains(string(cmdline), "walsender") {
			senders = append(senders, c)
			_ = syscall.Kill(c, syscall.SIGSTOP)
		}
	}
	if len(senders) == 0 {
		return fmt.Errorf("cut replication of %s: no WAL sender", p.Members[i].Name)
	}
	for _, c := range senders {
		if err := waitProc(c, "T"); err != nil {
			return fmt.Errorf("cut replication of %s: %w", p.Members[i].Name, err)
		}
	}
	return nil
}

// WipeMember deletes the data of member i, which must be down, as when its
// machine comes back with a new disk.
func (p *Patroni) WipeMember(i int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.Members[i]
	if m.proc != nil {
		return fmt.Errorf("wipe patroni %s: still running", m.Name)
	}
	if err := os.RemoveAll(m.DataDir); err != nil {
		return fmt.Errorf("wipe patroni %s: %w", m.Name, err)
	}
	return nil
}

// Close stops every member (Patroni stops its Postgres), then etcd. Its
// data is the caller's to remove.
func (p *Patroni) Close() {
	var wg sync.WaitGroup
	p.mu.Lock()
	for _, m := range p.Members {
		if m.proc == nil {
			continue
		}
		wg.Go(func() {
			if m.proc.Stop(20*time.Second) != nil {
				_ = syscall.Kill(-m.proc.Pid(), syscall.SIGKILL)
			}
			_ = signalPostgres(m.DataDir, syscall.SIGKILL) // left over if Patroni was killed
			m.proc = nil
		})
	}
	wg.Wait()
	for _, m := range p.Members {
		_ = signalPostgres(m.DataDir, syscall.SIGKILL) // of a killed Patroni
	}
	p.mu.Unlock()
	if p.Etcd != nil {
		p.Etcd.Close()
	}
}

// URL reaches whichever member is primary: pgx tries each member in turn
// and keeps the one that accepts writes.
func (p *Patroni) URL() string {
	hosts := make([]string, len(p.Members))
	for i, m := range p.Members {
		hosts[i] = addr(m.Port)
	}
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&target_session_attrs=read-write",
		p.User, p.Password, strings.Join(hosts, ","), p.Database)
}

// MemberURL reaches member i's Postgres alone, primary or standby.
func (p *Patroni) MemberURL(i int) string { return p.memberURL(i, p.Database) }

func (p *Patroni) memberURL(i int, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", p.User, p.Password, addr(p.Members[i].Port), db)
}

// Timing is Patroni's leader-lock TTL, loop wait and retry timeout.
func (p *Patroni) Timing() (ttl, loopWait, retryTimeout time.Duration) {
	return time.Duration(p.opt.TTL) * time.Second, time.Duration(p.opt.LoopWait) * time.Second,
		time.Duration(p.opt.RetryTimeout) * time.Second
}

// PatroniStatus is the cluster as its primary's Patroni sees it.
type PatroniStatus struct {
	Primary  int
	Timeline int
	// Sync holds the members Patroni would promote: its synchronous
	// standbys.
	Sync []int
	// Streaming holds the members that stream from the primary, with their
	// sync_state (sync, potential, async).
	Streaming map[int]string
}

// HasSyncStandby reports a synchronous standby that Patroni would promote
// and that streams from the primary as synchronous.
func (st PatroniStatus) HasSyncStandby() bool {
	for _, i := range st.Sync {
		if st.Streaming[i] == "sync" {
			return true
		}
	}
	return false
}

// Status asks each running member's Patroni whether it is the primary, and
// the primary who streams from it. A killed primary's lock outlives it by
// up to the TTL; it does not answer, so it is never reported.
func (p *Patroni) Status(ctx context.Context) (PatroniStatus, error) {
	st := PatroniStatus{Primary: -1, Streaming: map[int]string{}}
	for i, m := range p.Members {
		if p.running(i) && p.get(ctx, m.API, "/primary", nil) == nil {
			st.Primary = i
			break
		}
	}
	if st.Primary < 0 {
		return st, errors.New("patroni: no primary")
	}
	api := p.Members[st.Primary].API
	var self struct {
		Timeline    int `json:"timeline"`
		Replication []struct {
			Name      string `json:"application_name"`
			State     string `json:"state"`
			SyncState string `json:"sync_state"`
		} `json:"replication"`
	}
	if err := p.get(ctx, api, "/patroni", &self); err != nil {
		return st, err
	}
	st.Timeline = self.Timeline
	for _, r := range self.Replication {
		if i := p.member(r.Name); i >= 0 && r.State == "streaming" {
			st.Streaming[i] = r.SyncState
		}
	}
	var cluster struct {
		Members []struct {
			Name string `json:"name"`
			Role string `json:"role"`
		} `json:"members"`
	}
	if err := p.get(ctx, api, "/cluster", &cluster); err != nil {
		return st, err
	}
	for _, m := range cluster.Members {
		if m.Role == "sync_standby" {
			st.Sync = append(st.Sync, p.member(m.Name))
		}
	}
	return st, nil
}

// WaitSyncStandby waits until a primary has a synchronous standby that
// streams from it and Patroni would promote, and returns the primary.
func (p *Patroni) WaitSyncStandby(ctx context.Context) (primary int, err error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 50*time.Millisecond, 500*time.Millisecond
	var last error
	st, err := backoff.Retry(ctx, func() (PatroniStatus, error) {
		st, err := p.Status(ctx)
		if err == nil && !st.HasSyncStandby() {
			err = fmt.Errorf("patroni: primary %s has no streaming synchronous standby (%+v)", p.Members[st.Primary].Name, st)
		}
		last = err
		return st, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return -1, fmt.Errorf("wait for a synchronous standby: %w (last: %v)", err, last)
	}
	return st.Primary, nil
}

func (p *Patroni) running(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Members[i].proc != nil
}

func (p *Patroni) member(name string) int {
	for i, m := range p.Members {
		if m.Name == name {
			return i
		}
	}
	return -1
}

// get asks a Patroni REST API; any status but 200 is an error.
func (p *Patroni) get(ctx context.Context, api, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("patroni %s%s: %s", api, path, resp.Status)
	}
	if into == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// signalPostgres sends sig to the postmaster running dataDir and to every
// process it started. Patroni starts the postmaster in a session of its
// own, and each backend is a process group of its own, so neither
// Patroni's group nor the postmaster's covers them. For SIGKILL, the
// postmaster is stopped first so it cannot start more, and waited for.
func signalPostgres(dataDir string, sig syscall.Signal) error {
	pid, err := postmaster(dataDir)
	if err != nil || pid == 0 {
		return err
	}
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	for _, child := range children(pid) {
		_ = syscall.Kill(child, sig)
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal postmaster of %s: %w", dataDir, err)
	}
	if sig != syscall.SIGKILL {
		return nil
	}
	if err := waitProc(pid, "Z"); err != nil {
		return err
	}
	// Dead, but maybe not reaped yet (it is init's child): Postgres started
	// again would take the zombie's pid in its lock files for a running
	// postmaster. A rebooted machine has none of them either.
	locks, _ := filepath.Glob(filepath.Join(filepath.Dir(dataDir), ".s.PGSQL.*.lock"))
	for _, f := range append(locks, filepath.Join(dataDir, "postmaster.pid")) {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove lock file of a killed postmaster: %w", err)
		}
	}
	return nil
}

// postmaster returns the pid of the postmaster running dataDir, 0 if none.
func postmaster(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid of %s: %w", dataDir, err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), dataDir) {
		return 0, nil // a stale pid file: that postmaster is gone
	}
	return pid, nil
}

// waitProc waits, for at most 10 s, until process pid is in state (a
// letter of /proc/<pid>/stat: T stopped, Z zombie) or gone.
func waitProc(pid int, state string) error {
	_, err := backoff.Retry(context.Background(), func() (struct{}, error) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return struct{}{}, nil
		}
		_, rest, _ := strings.Cut(string(stat), ") ")
		if strings.HasPrefix(rest, state) || strings.HasPrefix(rest, "Z") {
			return struct{}{}, nil
		}
		return struct{}{}, fmt.Errorf("process %d not in state %s: %.20s", pid, state, rest)
	}, backoff.WithBackOff(backoff.NewConstantBackOff(10*time.Millisecond)), backoff.WithMaxElapsedTime(10*time.Second))
	return err
}

// children lists the processes pid started that are still running.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
