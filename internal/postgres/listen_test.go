package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/testenv"
)

// A listening connection that is lost is re-established, its loss reported
// in between, and notifications flow again; cancelling ctx ends Listen.
func TestListenReconnectsAfterLoss(t *testing.T) {
	db := testenv.Postgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var states []bool
	got := map[string]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Listen(ctx, slog.New(slog.DiscardHandler), []string{"test_listen"},
			func(_, payload string) { mu.Lock(); got[payload] = true; mu.Unlock() },
			func(listening bool) { mu.Lock(); states = append(states, listening); mu.Unlock() })
	}()
	// notified sends payload until Listen has delivered it.
	notified := func(payload string) func() error {
		return func() error {
			mu.Lock()
			ok := got[payload]
			mu.Unlock()
			if ok {
				return nil
			}
			if _, err := db.Pool.Exec(ctx, "SELECT pg_notify('test_listen', $1)", payload); err != nil {
				return err
			}
			return errors.New("not delivered yet")
		}
	}
	// Bounds: a connection and a notification on a loaded machine.
	testenv.Eventually(t, 10*time.Second, notified("before"))

	if _, err := db.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, notified("after"))
	mu.Lock()
	if want := fmt.Sprint([]bool{true, false, true}); fmt.Sprint(states) != want {
		t.Errorf("states %v, want %s (listening, lost, listening again)", states, want)
	}
	mu.Unlock()

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // failsafe against a hang, not a timing assertion
		t.Fatal("Listen did not return after its context was cancelled")
	}
}

// A listen connection whose server goes silent (gone without a word, as a
// Postgres container replaced on another address leaves it: no FIN, no
// RST) is noticed by its probe and replaced, instead of waiting minutes for
// TCP keepalive while notifications are missed.
func TestListenNoticesASilentServer(t *testing.T) {
	u, err := neturl.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := startSilencer(t, u.Host)
	u.Host = p.addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Config{URL: u.String(), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	states := make(chan bool, 16)
	go db.Listen(ctx, slog.New(slog.DiscardHandler), []string{"test_silent"}, func(_, _ string) {},
		func(listening bool) { states <- listening })
	want := func(listening bool, bound time.Duration) {
		t.Helper()
		select {
		case got := <-states:
			if got != listening {
				t.Fatalf("listening = %v, want %v", got, listening)
			}
		case <-time.After(bound): // the bound of a wait, not a timing assertion
			t.Fatalf("listening never became %v within %s", listening, bound)
		}
	}
	want(true, 10*time.Second)
	p.silence() // the connections open now go quiet; new ones pass
	// Bound: one quiet probe period, then a ping that gets no answer
	// (listenProbe each, 5 s), on a loaded machine.
	want(false, 30*time.Second)
	want(true, 10*time.Second)
}

// silencer relays TCP connections to an upstream address until silence,
// after which the connections it holds drop every byte and stay open, as
// if their peer had vanished; connections made later are relayed.
type silencer struct {
	addr   string
	mu     sync.Mutex
	frozen []*atomic.Bool
}

func startSilencer(t *testing.T, upstream string) *silencer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &silencer{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); up.Close() })
			quiet := &atomic.Bool{}
			s.mu.Lock()
			s.frozen = append(s.frozen, quiet)
			s.mu.Unlock()
			relay := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if err != nil {
						return
					}
					if !quiet.Load() {
						if _, err := dst.Write(buf[:n]); err != nil {
							return
						}
					}
				}
			}
			go relay(up, c)
			go relay(c, up)
		}
	}()
	return s
}

func (s *silencer) silence() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.frozen {
		q.Store(true)
	}
}
