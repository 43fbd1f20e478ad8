package launcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
)

// Redis is a private redis-server with appendfsync always.
type Redis struct {
	*Proc
	Addr  string
	Dir   string
	Extra []string // more addresses it listens on
}

// StartRedis starts redis-server on port with its AOF in dir, listening on
// 127.0.0.1 and any extra addresses. Started again on the same dir, it
// replays the same AOF.
func StartRedis(ctx context.Context, name, dir string, port int, extra ...string) (*Redis, error) {
	bin, err := LookBinary("redis-server")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(dir, "redis.log")
	p, err := StartProc(ProcSpec{Name: name, Path: bin, Log: logPath, Args: []string{
		"--port", strconv.Itoa(port), "--bind", strings.Join(append([]string{"127.0.0.1"}, extra...), " "), "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--protected-mode", "no", "--daemonize", "no", "--logfile", "",
	}})
	if err != nil {
		return nil, err
	}
	r := &Redis{Proc: p, Addr: addr, Dir: dir, Extra: extra}
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	err = waitReady(ctx, p, redisReady, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err()
	})
	switch {
	case errors.Is(err, errExited):
		return nil, fmt.Errorf("%w\n%s", err, tail(logPath, 2000))
	case err != nil:
		p.Kill()
		return nil, fmt.Errorf("wait for %s: %w", name, err)
	}
	return r, nil
}

// Postgres is a private PostgreSQL cluster.
type Postgres struct {
	*Proc
	Port  int
	Dir   string
	URL   string   // of the surge database
	Extra []string // more addresses it listens on (trusted like loopback)
}

// StartPostgres initialises a cluster in dir if there is none, starts it on
// port, and creates the surge database. As root it runs the server as the
// postgres user (Postgres refuses to run as root).
func StartPostgres(ctx context.Context, dir string, port int, extra ...string) (*Postgres, error) {
	binDir, dir, cred, err := postgresSetup(dir)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+".log")
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("postgres data dir: %w", err)
		}
		if cred != nil {
			if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("postgres data dir: %w", err)
			}
		}
		initdb, err := StartProc(ProcSpec{Name: "initdb", Path: filepath.Join(binDir, "initdb"), Log: logPath, Cred: cred,
			Dir:  "/",
			Args: []string{"-D", dir, "-U", "surge", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"}})
		if err != nil {
			return nil, err
		}
		<-initdb.Done()
		if initdb.Err() != nil {
			return nil, fmt.Errorf("initdb: %v\n%s", initdb.Err(), tail(logPath, 2000))
		}
	}
	if err := trustAddresses(dir, extra); err != nil {
		return nil, err
	}
	p, err := StartProc(ProcSpec{Name: "postgres", Path: filepath.Join(binDir, "postgres"), Log: logPath, Cred: cred, Dir: "/",
		Args: []string{"-D", dir, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=" + strings.Join(append([]string{"127.0.0.1"}, extra...), ","), "-c", "unix_socket_directories=" + dir,
			"-c", "max_connections=300", "-c", "fsync=on", "-c", "synchronous_commit=on",
			"-c", "shared_buffers=128MB", "-c", "log_min_messages=warning"}})
	if err != nil {
		return nil, err
	}
	pg := &Postgres{Proc: p, Port: port, Dir: dir, Extra: extra,
		URL: fmt.Sprintf("postgres://surge@127.0.0.1:%d/surge?sslmode=disable", port)}
	admin := fmt.Sprintf("postgres://surge@127.0.0.1:%d/postgres?sslmode=disable", port)
	var createErr error // Postgres answered, and refused: waiting will not help
	err = waitReady(ctx, p, postgresReady, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE DATABASE surge"); err != nil && !strings.Contains(err.Error(), "already exists") {
			createErr = fmt.Errorf("create database: %w", err)
			return backoff.Permanent(createErr)
		}
		return nil
	})
	switch {
	case errors.Is(err, errExited):
		return nil, fmt.Errorf("%w\n%s", err, tail(logPath, 2000))
	case createErr != nil:
		p.Stop(5 * time.Second)
		return nil, createErr
	case err != nil:
		p.Kill()
		return nil, fmt.Errorf("wait for postgres: %w", err)
	}
	return pg, nil
}

// Stop stops Postgres with a fast shutdown.
func (pg *Postgres) Stop(grace time.Duration) error {
	select {
	case <-pg.done:
		return nil
	default:
	}
	_ = pg.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-pg.done:
		return nil
	case <-time.After(grace):
		pg.Kill()
		return fmt.Errorf("postgres did not stop within %s; killed", grace)
	}
}

// trustAddresses lets the extra listen addresses in like loopback (a test
// host in a network namespace of ours reaches Postgres through them).
func trustAddresses(dir string, addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	path := filepath.Join(dir, "pg_hba.conf")
	hba, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pg_hba: %w", err)
	}
	for _, a := range addrs {
		line := fmt.Sprintf("host all all %s/32 trust\n", a)
		if !strings.Contains(string(hba), line) {
			hba = append(hba, line...)
		}
	}
	return os.WriteFile(path, hba, 0o600)
}

// postgresSetup finds Postgres's binaries, and as root the postgres user
// to run it as and a path to dir that user can reach.
func postgresSetup(dir string) (binDir, reachable string, cred *syscall.Credential, err error) {
	if binDir, err = PostgresBinDir(); err != nil {
		return "", "", nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", "", nil, err
	}
	if cred, err = postgresCredential(); err != nil {
		return "", "", nil, err
	}
	if cred != nil {
		if dir, err = reachableDir(dir, cred); err != nil {
			return "", "", nil, err
		}
	}
	return binDir, dir, cred, nil
}

func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user to run Postgres: %w (run `make deps`)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// reachableDir returns dir if the postgres user can reach it. Otherwise (a
// checkout under /root, a 0700 temp dir) it links dir to a directory under
// /var/tmp that it can reach, and returns that.
func reachableDir(dir string, cred *syscall.Credential) (string, error) {
	if traversable(filepath.Dir(dir), cred) {
		return dir, nil
	}
	if target, err := os.Readlink(dir); err == nil {
		return target, nil
	}
	base, err := os.MkdirTemp("/var/tmp", "surge-pg-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return "", err
	}
	target := filepath.Join(base, "data")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(target, dir); err != nil {
		return "", fmt.Errorf("link postgres data dir: %w", err)
	}
	return target, nil
}

func traversable(dir string, cred *syscall.Credential) bool {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return false
		}
		sys := st.Sys().(*syscall.Stat_t)
		mode := st.Mode().Perm()
		ok := mode&0o001 != 0 ||
			(sys.Uid == cred.Uid && mode&0o100 != 0) ||
			(sys.Gid == cred.Gid && mode&0o010 != 0)
		if !ok {
			return false
		}
		if d == "/" || d == "." {
			return true
		}
	}
}
