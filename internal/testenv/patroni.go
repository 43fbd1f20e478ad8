package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
)

// Patroni starts a private Patroni cluster of n Postgres members (3-member
// etcd, synchronous_mode_strict, pg_rewind, checksums; launcher.Patroni's
// short test timing) and waits for a primary with a synchronous standby.
// It is stopped and its data removed when the test ends.
func Patroni(t testing.TB, n int) *launcher.Patroni {
	t.Helper()
	return PatroniOn(t, PatroniDir(t), n)
}

// PatroniDir returns a directory for a Patroni cluster's state, removed
// when the test ends unless it failed (then its path is logged). It skips
// the test in -short.
func PatroniDir(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs patroni, etcd and postgres (skipped in -short)")
	}
	// Not t.TempDir: the postgres user must reach it, and the Unix socket
	// path under it must stay short.
	dir, err := os.MkdirTemp("", "surge-patroni-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs and data kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// PatroniOn starts (or starts again) the Patroni cluster of n members kept
// in dir (see PatroniDir), and waits for a primary with a synchronous
// standby. It is stopped when the test ends, if the test has not closed it.
func PatroniOn(t testing.TB, dir string, n int) *launcher.Patroni {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), PatroniStart)
	defer cancel()
	p, err := launcher.StartPatroni(ctx, dir, launcher.PatroniOptions{Members: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			for _, m := range p.Members {
				t.Logf("%s's log, last lines:\n%s", m.Name, lastLines(m.Log, 40))
			}
		}
	})
	return p
}

// WaitFailover waits until a member other than old is primary with a
// streaming synchronous standby, and returns it.
func WaitFailover(t testing.TB, p *launcher.Patroni, old int) (primary int) {
	t.Helper()
	Eventually(t, PatroniFailover(p), func() error {
		st, err := p.Status(context.Background())
		switch {
		case err != nil:
			return err
		case st.Primary == old:
			return fmt.Errorf("%s is still the primary", p.Members[old].Name)
		case !st.HasSyncStandby():
			return fmt.Errorf("no streaming synchronous standby yet: %+v", st)
		}
		primary = st.Primary
		return nil
	})
	return primary
}

// WaitStreaming waits until member i streams from the primary, with the
// given sync_state ("sync", or "" for any).
func WaitStreaming(t testing.TB, p *launcher.Patroni, i int, syncState string) launcher.PatroniStatus {
	t.Helper()
	var st launcher.PatroniStatus
	Eventually(t, PatroniRejoin(p), func() error {
		var err error
		if st, err = p.Status(context.Background()); err != nil {
			return err
		}
		got, ok := st.Streaming[i]
		if !ok || (syncState != "" && got != syncState) {
			return fmt.Errorf("%s does not stream from the primary as %q: %+v", p.Members[i].Name, syncState, st)
		}
		return nil
	})
	return st
}

// PatroniFailover bounds a failover after the primary's machine died: its
// leader lock outlives it by up to the TTL, the next member's loop notices
// within a loop wait, promotion may retry for the retry timeout, and a
// remaining member becomes the synchronous standby over the next loops;
// PostgresStart covers a loaded machine.
func PatroniFailover(p *launcher.Patroni) time.Duration {
	ttl, loop, retry := p.Timing()
	return ttl + 3*loop + retry + PostgresStart
}

// lastLines returns the last n lines of a log file.
func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// PatroniRejoin bounds a member's return as a streaming standby once
// started again: crash recovery, pg_rewind or a base backup of a small
// database, and a loop or two.
func PatroniRejoin(p *launcher.Patroni) time.Duration {
	_, loop, retry := p.Timing()
	return 3*loop + retry + 2*PostgresStart
}
