package launcher_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/launcher"
)

// A state directory from a run with a single Postgres is refused by a run
// on Patroni, and the other way round, before anything starts: either run
// would start on an empty database and never show the data already there.
func TestUpRefusesTheOtherKindOfPostgresData(t *testing.T) {
	for _, tc := range []struct {
		name     string
		file     string // what the earlier run left
		content  string
		members  int
		wantSays []string
	}{
		{"single, then patroni", "postgres/PG_VERSION", "15\n", 3, []string{"single Postgres", "make clean", "--postgres-members 1"}},
		{"patroni, then single", "patroni/ports.json", `{"members": [{}, {}, {}]}`, 1,
			[]string{"Patroni", "make clean", "--postgres-members 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.file)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := launcher.Up(context.Background(), launcher.Options{Dir: dir, BinDir: t.TempDir(), Shards: 1, Workers: 1,
				PostgresMembers: tc.members})
			if err == nil {
				t.Fatal("Up started on the other kind of Postgres data")
			}
			for _, want := range tc.wantSays {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "logs")); err == nil {
				t.Error("Up started something before refusing (logs/ exists)")
			}
		})
	}
}
