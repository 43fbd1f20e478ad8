// Package launcher starts surge and its dependencies as child processes on
// this machine: private Postgres, Redis and HAProxy instances on free ports,
// and the web, worker and result services. `make run` and the end-to-end
// tests use the same code.
package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Proc is a supervised child process.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
}

// ProcSpec says how to start a process.
type ProcSpec struct {
	Name string
	Path string
	Args []string
	Env  []string // added to the launcher's environment
	Dir  string
	Log  string // file receiving stdout and stderr
	Cred *syscall.Credential
}

// StartProc starts a child in its own process group (so a terminal's Ctrl-C
// reaches only the launcher, which stops children in order). The child gets
// SIGTERM if the launcher dies.
func StartProc(spec ProcSpec) (*Proc, error) {
	logf, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: spec.Cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p := &Proc{Name: spec.Name, cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error, once Done is closed.
func (p *Proc) Err() error { return p.err }

// Pause stops the process (SIGSTOP) until Resume, as a hung machine: it
// holds its connections and answers nothing.
func (p *Proc) Pause() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Proc) Resume() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM, waits up to grace, then kills. It returns the exit
// error of a process that stopped on its own terms.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s; killed", p.Name, grace)
	}
}

var (
	portsMu sync.Mutex
	taken   = map[int]bool{}
)

// FreePort returns a loopback TCP port that is free now. Ports come from
// 20000-32000, below the ephemeral range, so that client connections in
// TIME_WAIT never hold them.
func FreePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if taken[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		taken[port] = true
		return port, nil
	}
	return 0, errors.New("no free port found")
}

// How long a process may take to become ready, from what each waits for,
// with room for a loaded 2-core machine. A caller's ctx can end it sooner.
const (
	// redis-server answers once it has loaded its AOF: at once when fresh,
	// a few seconds after a chaos run's 100k entries.
	redisReady = 30 * time.Second
	// Postgres answers after crash recovery, which replays the WAL written
	// since the last checkpoint (up to max_wal_size, 1 GB).
	postgresReady = 2 * time.Minute
	// A surge service listens once its stores answer and, for result and
	// admin, migrations ran (one replica at a time, under tern's lock).
	// HAProxy listens at once.
	listenReady = time.Minute
	// A listening service is healthy once it reaches its stores; HAProxy
	// routes to it after rise (2) checks, inter (1 s) apart.
	healthyReady = 30 * time.Second
)

// errExited says the process waited for exited instead of becoming ready.
var errExited = errors.New("exited")

// waitReady polls probe, at short, growing, jittered intervals, until it
// succeeds. It gives up when p exits (an error wrapping errExited), when
// ctx ends or when bound passes; probe's ctx ends then too. A probe that
// returns backoff.Permanent(err) ends the wait with err.
func waitReady(ctx context.Context, p *Proc, bound time.Duration, probe func(context.Context) error) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 20*time.Millisecond, 250*time.Millisecond
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		select {
		case <-p.Done():
			return struct{}{}, backoff.Permanent(fmt.Errorf("%s %w: %v", p.Name, errExited, p.Err()))
		default:
		}
		last = probe(ctx)
		return struct{}{}, last
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0)) // ctx carries the bound
	switch {
	case err == nil || errors.Is(err, errExited) || ctx.Err() == nil:
		return err
	case parent.Err() != nil:
		return fmt.Errorf("%w (last try: %v)", parent.Err(), last)
	default:
		return fmt.Errorf("not ready within %s: %w (last try: %v)", bound, ctx.Err(), last)
	}
}

// WaitTCP waits until something accepts connections on addr, for at most
// a minute (a service's start-up).
func WaitTCP(ctx context.Context, addr string, p *Proc) error {
	err := waitReady(ctx, p, listenReady, func(ctx context.Context) error {
		c, err := (&net.Dialer{Timeout: 200 * time.Millisecond}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	switch {
	case errors.Is(err, errExited):
		return fmt.Errorf("%w before listening on %s (see its log)", err, addr)
	case err != nil:
		return fmt.Errorf("wait for %s at %s: %w", p.Name, addr, err)
	}
	return nil
}

// WaitHealthy waits until url (p's health check) answers 200 through
// client, for at most 30 s, or until p exits.
func WaitHealthy(ctx context.Context, client *http.Client, url string, p *Proc) error {
	err := waitReady(ctx, p, healthyReady, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return backoff.Permanent(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s to be healthy: %w", url, err)
	}
	return nil
}

// LookBinary finds a program in PATH or in the system directories Debian
// installs servers to.
func LookBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: run `make deps` (installs redis-server, postgresql, haproxy, etcd and patroni)", name)
}

// PostgresBinDir returns the newest /usr/lib/postgresql/<version>/bin.
func PostgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("postgresql not found: run `make deps` (installs redis-server, postgresql, haproxy, etcd and patroni)")
}

// tail returns the last bytes of a log file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
