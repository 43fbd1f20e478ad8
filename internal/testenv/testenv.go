// Package testenv starts real Redis and Postgres servers for integration
// tests, on free loopback ports, through the same launcher code as
// `make run`. Tests that need them are skipped under -short.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
)

// Redis starts a private redis-server (appendfsync always) for the test.
func Redis(t testing.TB) *launcher.Redis {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server (skipped in -short)")
	}
	port, err := launcher.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := launcher.StartRedis(ctx, "redis", filepath.Join(t.TempDir(), "redis"), port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Kill() })
	return r
}

// RestartRedis starts redis-server again on the same port and AOF.
func RestartRedis(t testing.TB, r *launcher.Redis) *launcher.Redis {
	t.Helper()
	<-r.Done()
	_, portStr, _ := cutLast(r.Addr, ":")
	var port int
	fmt.Sscan(portStr, &port)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r2, err := launcher.StartRedis(ctx, "redis", r.Dir, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r2.Kill() })
	return r2
}

func cutLast(s, sep string) (string, string, bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// RedisClient returns a client for r, closed at cleanup.
func RedisClient(t testing.TB, r *launcher.Redis) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// StreamEvents counts each event id (surge.Entry.EventID) in the entries
// stream c holds: the copies of an entry share it, their stream ids differ.
func StreamEvents(ctx context.Context, c *goredis.Client) (map[string]int, error) {
	msgs, err := c.XRange(ctx, "surge:entries", "-", "+").Result()
	if err != nil {
		return nil, err
	}
	ids := map[string]int{}
	for _, m := range msgs {
		e, err := surge.DecodeEntry(m.ID, m.Values)
		if err != nil {
			return nil, err
		}
		ids[e.EventID()]++
	}
	return ids, nil
}

var (
	pgOnce   sync.Once
	pgServer *launcher.Postgres
	pgErr    error
	dbSeq    atomic.Int64
)

// Postgres returns a fresh, migrated database on a Postgres server shared by
// the test binary. Call StopPostgres from TestMain.
func Postgres(t testing.TB) *postgres.DB {
	t.Helper()
	url := PostgresURL(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// PostgresURL returns the URL of a fresh, empty database.
func PostgresURL(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs postgres (skipped in -short)")
	}
	pgOnce.Do(func() { pgServer, pgErr = startPostgres() })
	if pgErr != nil {
		t.Fatal(pgErr)
	}
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://surge@127.0.0.1:%d/postgres?sslmode=disable", pgServer.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://surge@127.0.0.1:%d/%s?sslmode=disable", pgServer.Port, name)
}

// startPostgres starts a Postgres server on a free port, its data in a new
// temporary folder that the postgres user can reach when we are root.
func startPostgres() (*launcher.Postgres, error) {
	dir, err := os.MkdirTemp("", "surge-test-pg-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	port, err := launcher.FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pg, err := launcher.StartPostgres(ctx, filepath.Join(dir, "data"), port)
	if err != nil {
		os.RemoveAll(dir)
	}
	return pg, err
}

// PrivatePostgres starts a Postgres server of the test's own, which it may
// stop and start again (RestartPostgres) without disturbing the package's
// shared one. It is stopped and its data removed when the test ends.
func PrivatePostgres(t testing.TB) *launcher.Postgres {
	t.Helper()
	if testing.Short() {
		t.Skip("needs postgres (skipped in -short)")
	}
	pg, err := startPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pg.Stop(10 * time.Second)
		os.RemoveAll(filepath.Dir(pg.Dir))
	})
	return pg
}

// RestartPostgres starts a stopped PrivatePostgres again on the same port
// and data.
func RestartPostgres(t testing.TB, pg *launcher.Postgres) *launcher.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pg2, err := launcher.StartPostgres(ctx, pg.Dir, pg.Port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg2.Stop(10 * time.Second) })
	return pg2
}

// StopPostgres stops the shared server and removes its data. Call it at the
// end of TestMain.
func StopPostgres() {
	if pgServer != nil {
		pgServer.Stop(10 * time.Second)
		os.RemoveAll(filepath.Dir(pgServer.Dir))
	}
}

// BuildBinaries builds the web, worker and result commands into a temporary
// directory and returns it.
func BuildBinaries() (string, error) {
	dir, err := os.MkdirTemp("", "surge-bin-")
	if err != nil {
		return "", err
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./web", "./worker", "./result")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(string(out[:len(out)-1])), nil
}

// Main runs a package's tests and then stops the shared Postgres:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	StopPostgres()
	os.Exit(code)
}

// LogBuffer is a goroutine-safe writer for capturing a server's logs.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// PostgresClient is a client of the database at url (from PostgresURL),
// closed when the test ends.
func PostgresClient(tb testing.TB, url string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), postgres.Config{URL: url})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	return db
}

// Started fails the test if a service did not start (err), and otherwise
// closes it when the test ends.
func Started[S interface{ Close() }](tb testing.TB, s S, err error) S {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}
