package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
)

// The tool against the real pipeline (the launcher behind `make run`: 2
// shards, 2 workers, HAProxy): 300 voters and orders for a few seconds,
// verified. Then the database is tampered with, and the same verification
// must see each kind of damage.
func TestLoadAndVerifyAgainstTheStack(t *testing.T) {
	ctx, c, dir := upStack(t)
	cfg := DefaultConfig()
	cfg.Target, cfg.AdminUser, cfg.AdminPass = c.URL, c.AdminUser, c.AdminPassword
	cfg.Rate, cfg.Duration, cfg.MaxRequests = 300, 3*time.Second, 2000
	cfg.Voters, cfg.ChangeRatio = 300, 0.5
	cfg.OrderRatio, cfg.Items, cfg.Stock = 0.2, 2, 40
	cfg.Verify, cfg.DrainTimeout = true, 30*time.Second
	cfg.JSONPath, cfg.PlotPath = filepath.Join(dir, "report.json"), filepath.Join(dir, "plot.png")
	r, rep, out := runLoad(t, ctx, cfg)
	v := rep.Verdict
	if v == nil || !v.OK() {
		t.Fatalf("verdict %+v", v)
	}
	if v.VotersChecked < 300 || rep.Ledger.VotesAcked < 600 || rep.Ledger.OrdersAcked < 50 {
		t.Errorf("too little was checked: %+v, ledger %+v", v, rep.Ledger)
	}
	if v.Confirmed == 0 || v.Rejected == 0 || v.UnitsConfirmed < 70 {
		t.Errorf("orders: %d confirmed (%d units), %d rejected; want the 80 units (nearly) sold out and some refused", v.Confirmed, v.UnitsConfirmed, v.Rejected)
	}
	if s := rep.Summary; s.Requests < 850 || s.Requests > 900 || s.ByClass["202"] != s.Requests {
		t.Errorf("summary %+v", s)
	}
	for _, f := range []string{cfg.JSONPath, cfg.PlotPath} {
		if st, err := os.Stat(f); err != nil || st.Size() < 1000 {
			t.Errorf("%s: %v", f, err)
		}
	}

	// Damage: a counted vote deleted (lost), a count raised above the votes
	// (duplicated), a rejected order confirmed (oversold), and a vote for a
	// voter the run never had (unexpected).
	conn, err := pgx.Connect(ctx, c.Postgres.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	poll := rep.Poll
	for _, q := range []string{
		`DELETE FROM votes WHERE poll = $1 AND voter = (SELECT min(voter) FROM votes WHERE poll = $1)`,
		`UPDATE orders SET status = 'confirmed', reason = NULL
		  WHERE id = (SELECT min(id) FROM orders WHERE id LIKE 'load-' || substr($1, 6) || '-%' AND status = 'rejected')`,
		`INSERT INTO votes (poll, voter, choice, version, event_id) VALUES ($1, 'ffffffffffffffffffffffffffffffff', 'red', 1, 'X')`,
		`UPDATE option_counts SET votes = votes + 2 WHERE poll = $1 AND option = 'green'`,
	} {
		if tag, err := conn.Exec(ctx, q, poll); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%s: %v %v", q, tag, err)
		}
	}
	// Every real change announces itself to result's cache; so must this one
	// (raw SQL does not), and the damage must show before it is verified.
	before := countOf(t, c.URL, poll, "green")
	if _, err := conn.Exec(ctx, `SELECT pg_notify('surge_results', $1)`, poll); err != nil {
		t.Fatal(err)
	}
	// A NOTIFY and one coalesced read, within a push interval (200 ms).
	testenv.Eventually(t, 10*time.Second, func() error {
		if countOf(t, c.URL, poll, "green") == before {
			return errors.New("the results do not show the damaged count")
		}
		return nil
	})
	out.Reset()
	err = r.verify(ctx)
	t.Log(out.String())
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("verify after the damage: %v", err)
	}
	d := ve.Verdict
	if d.Lost < 1 || d.Duplicated < 1 || d.Oversold < 1 || d.Unexpected < 1 {
		t.Errorf("damage not seen: lost=%d duplicated=%d oversold=%d unexpected=%d", d.Lost, d.Duplicated, d.Oversold, d.Unexpected)
	}
}

// runLoad runs the tool with cfg and logs its output, which it returns
// for later runs to reuse.
func runLoad(t *testing.T, ctx context.Context, cfg Config) (*runner, *Report, *strings.Builder) {
	t.Helper()
	var out strings.Builder
	r, err := newRunner(ctx, cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.run(ctx)
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	return r, rep, &out
}

// upStack starts the real pipeline (2 shards, 2 workers, HAProxy) for a
// test of at most 3 minutes, or skips the test in -short.
func upStack(t *testing.T) (context.Context, *launcher.Cluster, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the whole stack (skipped in -short)")
	}
	bin, err := testenv.BuildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	// The load tool's voters and buyers all come from loopback: no
	// per-address limits.
	c, err := launcher.Up(ctx, launcher.Options{Dir: dir, BinDir: bin, Shards: 2, Workers: 2,
		WebEnv: []string{"SURGE_NEW_VOTERS_PER_IP=0", "SURGE_ORDERS_PER_IP=0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return ctx, c, dir
}

// --cart-lines 3 against the real pipeline: every order a cart of the 3
// run items, from a stock that runs out; the verification finds each cart
// all or nothing. Then an item's stock is raised by hand, as if a confirmed
// cart had not taken that line, and the verification sees it.
func TestCartLoadAgainstTheStack(t *testing.T) {
	ctx, c, dir := upStack(t)
	cfg := DefaultConfig()
	cfg.Target, cfg.AdminUser, cfg.AdminPass = c.URL, c.AdminUser, c.AdminPassword
	cfg.Rate, cfg.Duration, cfg.MaxRequests = 200, 2*time.Second, 1000
	cfg.Voters, cfg.OrderRatio, cfg.Items, cfg.Stock, cfg.CartLines = 100, 0.5, 3, 30, 3
	cfg.Verify, cfg.DrainTimeout = true, 30*time.Second
	cfg.JSONPath, cfg.PlotPath = filepath.Join(dir, "report.json"), ""
	r, rep, out := runLoad(t, ctx, cfg)
	if v := rep.Verdict; v == nil || !v.OK() || v.Confirmed == 0 || v.Rejected == 0 {
		t.Fatalf("verdict %+v: want every cart all or nothing, some confirmed and some rejected", v)
	}
	orders, err := r.api.auditOrders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	carts := 0
	for _, o := range orders {
		if strings.HasPrefix(o.OrderID, "load-"+rep.RunID+"-") {
			if len(o.Lines) != 3 {
				t.Fatalf("order %+v: want a cart of 3 lines", o)
			}
			carts++
		}
	}
	if carts < 50 {
		t.Fatalf("%d carts applied, want most of the run's ~200 orders", carts)
	}

	conn, err := pgx.Connect(ctx, c.Postgres.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE items SET quantity = quantity + 1 WHERE id = $1`, rep.Items[0].ID); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = r.verify(ctx)
	t.Log(out.String())
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Verdict.Unexpected < 1 {
		t.Fatalf("verify after a line was given back: %v", err)
	}
}

// countOf reads one option's count from the results API.
func countOf(t *testing.T, base, poll, option string) int64 {
	t.Helper()
	resp, err := http.Get(base + "/results/api/polls/" + poll)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct{ Counts map[string]int64 }
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	return res.Counts[option]
}
