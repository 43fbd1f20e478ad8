package postgres_test

import (
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// migrationCount is the number of migration files, which is the schema
// version once they are all applied.
func migrationCount(t *testing.T) int32 {
	t.Helper()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			n++
		}
	}
	if n == 0 {
		t.Fatal("no migration files")
	}
	return n
}

// schemaTables returns the oid of each table of the public schema, by name.
// A table dropped and created again gets a new oid.
func schemaTables(t *testing.T, ctx context.Context, db *postgres.DB) map[string]uint32 {
	t.Helper()
	rows, err := db.Pool.Query(ctx, `
		SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'r'`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	var name string
	var oid uint32
	if _, err := pgx.ForEachRow(rows, []any{&name, &oid}, func() error {
		out[name] = oid
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// schemaShape describes the public schema: every column with its type and
// every constraint with its definition, sorted.
func schemaShape(t *testing.T, ctx context.Context, db *postgres.DB) []string {
	t.Helper()
	rows, err := db.Pool.Query(ctx, `
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
		FROM information_schema.columns WHERE table_schema = 'public'
		UNION ALL
		SELECT 'constraint ' || c.conrelid::regclass::text || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname = 'public'
		UNION ALL
		SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	shape, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return shape
}

// schemaVersions returns every row of the version table.
func schemaVersions(t *testing.T, ctx context.Context, db *postgres.DB) []int32 {
	t.Helper()
	rows, err := db.Pool.Query(ctx, `SELECT version FROM public.schema_version`)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return versions
}

// 6. Replicas that start at once all migrate the same fresh database: every
// Migrate succeeds, the schema is created once, and a later Migrate is a
// no-op that keeps the tables and their data.
func TestMigrateConcurrent(t *testing.T) {
	cases := []struct {
		name     string
		replicas int
	}{
		{"one replica", 1},
		{"six replicas at once", 6},
	}
	wantVersion := migrationCount(t)
	// The tables of this package's migrations; later migrations may add more.
	wantTables := []string{"option_counts", "poll_options", "polls", "schema_version", "votes"}
	// The schema as a single Migrate leaves it.
	reference := func() []string {
		ctx := context.Background()
		return schemaShape(t, ctx, testenv.Postgres(t))
	}()
	if len(reference) == 0 {
		t.Fatal("a single Migrate left an empty schema")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			url := testenv.PostgresURL(t)

			dbs := make([]*postgres.DB, tc.replicas)
			for i := range dbs {
				db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(db.Close)
				if err := db.Ping(ctx); err != nil { // connect before the race
					t.Fatal(err)
				}
				dbs[i] = db
			}
			var wg sync.WaitGroup
			errs := make([]error, len(dbs))
			start := make(chan struct{})
			for i, db := range dbs {
				wg.Go(func() {
					<-start
					errs[i] = db.Migrate(ctx)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("replica %d: Migrate: %v", i, err)
				}
			}
			if t.Failed() {
				t.FailNow()
			}

			db := dbs[0]
			tables := schemaTables(t, ctx, db)
			for _, name := range wantTables {
				if _, ok := tables[name]; !ok {
					t.Errorf("table %s missing; tables = %v", name, slices.Sorted(maps.Keys(tables)))
				}
			}
			if got := schemaShape(t, ctx, db); !slices.Equal(got, reference) {
				t.Errorf("schema differs from a single Migrate:\n got  %q\n want %q", got, reference)
			}
			if got := schemaVersions(t, ctx, db); len(got) != 1 || got[0] != wantVersion {
				t.Fatalf("schema_version rows = %v, want [%d]", got, wantVersion)
			}
			var checks int
			if err := db.Pool.QueryRow(ctx, `
				SELECT count(*) FROM pg_constraint
				WHERE conrelid = 'public.option_counts'::regclass AND contype = 'c'`).Scan(&checks); err != nil {
				t.Fatal(err)
			}
			if checks != 1 {
				t.Errorf("option_counts has %d check constraints, want 1", checks)
			}

			// Migrate again, from every replica, with data in the tables.
			if err := db.EnsurePolls(ctx, testPolls); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ApplyVotes(ctx, []surge.Vote{v("alice", "cats", 1, "e1")}); err != nil {
				t.Fatal(err)
			}
			for i, d := range dbs {
				if err := d.Migrate(ctx); err != nil {
					t.Fatalf("replica %d: second Migrate: %v", i, err)
				}
			}
			if got := schemaTables(t, ctx, db); !maps.Equal(got, tables) {
				t.Errorf("second Migrate changed the tables: %v, was %v", got, tables)
			}
			if got := schemaVersions(t, ctx, db); len(got) != 1 || got[0] != wantVersion {
				t.Errorf("after second Migrate: schema_version rows = %v, want [%d]", got, wantVersion)
			}
			res, err := db.Results(ctx, catsPoll)
			if err != nil || res.Counts["cats"] != 1 || res.Total != 1 {
				t.Errorf("after second Migrate: results %+v, %v; want cats=1", res, err)
			}
		})
	}
}

// The migration that adds the commit sequence dates the counts of a poll
// that has votes by its last vote; a poll without any shows its creation.
func TestMigrationDatesExistingCounts(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, "public.schema_version")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(os.DirFS("migrations")); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	lastVote := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO polls (id, title, created_at) VALUES ('cats-vs-dogs', 'Cats?', $1), ('best-editor', 'Editor?', $1)`, []any{created}},
		{`INSERT INTO poll_options (poll, option, position) VALUES ('cats-vs-dogs', 'cats', 0), ('cats-vs-dogs', 'dogs', 1), ('best-editor', 'vim', 0), ('best-editor', 'nano', 1)`, nil},
		{`INSERT INTO option_counts (poll, option, votes) VALUES ('cats-vs-dogs', 'cats', 2), ('cats-vs-dogs', 'dogs', 0), ('best-editor', 'vim', 0), ('best-editor', 'nano', 0)`, nil},
		{`INSERT INTO votes (poll, voter, choice, version, event_id, committed_at) VALUES
			('cats-vs-dogs', 'a', 'cats', 1, 'e1', $1), ('cats-vs-dogs', 'b', 'cats', 1, 'e2', $2)`, []any{created.Add(time.Hour), lastVote}},
	} {
		if _, err := conn.Exec(ctx, st.sql, st.args...); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for poll, want := range map[string]time.Time{"cats-vs-dogs": lastVote, "best-editor": created} {
		res, err := db.Results(ctx, poll)
		if err != nil || res.Seq != 0 || !res.UpdatedAt.Equal(want) {
			t.Errorf("%s: %+v, %v; want seq 0, updated_at %v", poll, res, err, want)
		}
	}
}
