package launcher_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
)

// A fresh cluster has data checksums, strict synchronous replication and
// pg_rewind on, and the multi-host URL reaches its primary.
func TestPatroniClusterIsStrictlySynchronous(t *testing.T) {
	p := testenv.Patroni(t, 2)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for setting, want := range map[string]string{"data_checksums": "on", "transaction_read_only": "off",
		"synchronous_commit": "on"} {
		var got string
		if err := conn.QueryRow(ctx, "SHOW "+setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", setting, got, want)
		}
	}
	var names string
	if err := conn.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&names); err != nil || names == "" {
		t.Errorf("synchronous_standby_names = %q (%v): want the standby named", names, err)
	}
	st, err := p.Status(ctx)
	if err != nil || !st.HasSyncStandby() {
		t.Errorf("status %+v, %v: want a streaming synchronous standby", st, err)
	}
	t.Logf("status %+v, synchronous_standby_names %s", st, names)
}

// A cluster started again on its directory after a clean stop is the same
// cluster: the same ports and passwords, the row written before the stop,
// and a primary with a synchronous standby; `make run` relies on it. A
// start that asks for another number of members is refused before anything
// runs.
func TestPatroniKeepsItsStateAcrossRestarts(t *testing.T) {
	dir := testenv.PatroniDir(t)
	ctx := context.Background()
	p := testenv.PatroniOn(t, dir, 3)
	conn, err := pgx.Connect(ctx, p.URL())
	if err != nil {
		t.Fatal(err)
	}
	row := "written before the stop " + strconv.FormatInt(time.Now().UnixNano(), 36)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('"+row+"')")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secrets := readSecrets(t, dir)
	url := p.URL()
	start := time.Now()
	p.Close()
	t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))

	if _, err := launcher.StartPatroni(ctx, dir, launcher.PatroniOptions{Members: 2}); err == nil ||
		!strings.Contains(err.Error(), "3 Postgres members") {
		t.Errorf("a 2-member start on a 3-member cluster: %v, want a refusal", err)
	}
	start = time.Now()
	p = testenv.PatroniOn(t, dir, 3)
	t.Logf("started again in %s", time.Since(start).Round(time.Millisecond))
	if p.URL() != url {
		t.Errorf("URL after a restart %s, want the same as before, %s", p.URL(), url)
	}
	if got := readSecrets(t, dir); !maps.Equal(got, secrets) {
		t.Errorf("passwords changed across the restart: %v, then %v", secrets, got)
	}
	conn, err = pgx.Connect(ctx, p.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var got string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != row {
		t.Errorf("row after the restart %q, want %q", got, row)
	}
	st, err := p.Status(ctx)
	t.Logf("after the restart: %+v, %v", st, err)
}

// readSecrets reads the password files a Patroni cluster keeps in dir, and
// checks that only their owner can read them.
func readSecrets(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range []string{"superuser.password", "replication.password", "rewind.password"} {
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, st.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) < 32 {
			t.Fatalf("%s: %q, %v", name, b, err)
		}
		out[name] = string(b)
	}
	return out
}
