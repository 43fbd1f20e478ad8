package results_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/results"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestResultsAPIAndPage(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	polls := []surge.Poll{
		surge.DefaultPolls()[0],
		{ID: "tea", Title: `Tea <script>alert("x")</script>`, Options: []string{"yes", "no", "maybe"}},
	}
	if err := db.EnsurePolls(ctx, polls); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ApplyVotes(ctx, []surge.Vote{
		{ID: "1", Poll: "cats-vs-dogs", Choice: "cats", Voter: "a", Version: 1},
		{ID: "2", Poll: "cats-vs-dogs", Choice: "cats", Voter: "b", Version: 1},
		{ID: "3", Poll: "cats-vs-dogs", Choice: "dogs", Voter: "c", Version: 1},
	}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(results.New("result-<1>", db, redis.Shards{}, results.NewLive(db, slog.New(slog.DiscardHandler), time.Millisecond), slog.New(slog.DiscardHandler)).Handler())
	defer ts.Close()

	tests := []struct {
		path   string
		status int
		want   surge.Results
	}{
		{"/results/api/polls/cats-vs-dogs", 200, surge.Results{Poll: "cats-vs-dogs", Counts: map[string]int64{"cats": 2, "dogs": 1}, Total: 3}},
		{"/results/api/polls/tea", 200, surge.Results{Poll: "tea", Counts: map[string]int64{"yes": 0, "no": 0, "maybe": 0}, Total: 0}},
		{"/results/api/polls/nope", 404, surge.Results{}},
	}
	for _, tt := range tests {
		status, body := get(t, ts.URL+tt.path)
		if status != tt.status {
			t.Fatalf("%s: status %d, body %s", tt.path, status, body)
		}
		if status != 200 {
			continue
		}
		var got surge.Results
		json.Unmarshal([]byte(body), &got)
		if got.Poll != tt.want.Poll || got.Total != tt.want.Total || len(got.Counts) != len(tt.want.Counts) {
			t.Fatalf("%s: %+v, want %+v", tt.path, got, tt.want)
		}
		for k, v := range tt.want.Counts {
			if got.Counts[k] != v {
				t.Fatalf("%s: %+v, want %+v", tt.path, got, tt.want)
			}
		}
	}

	status, page := get(t, ts.URL+"/results")
	if status != 200 {
		t.Fatalf("page status %d", status)
	}
	for _, want := range []string{`>result-&lt;1&gt;<`, "Tea &lt;script&gt;", `<strong class="total">3</strong>`, `<span class="count">2</span> <span class="pct">66.7%</span>`, `<span class="count">0</span> <span class="pct">0.0%</span>`, `src="/static/results.js"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, `<script>alert`) {
		t.Error("page renders unescaped data")
	}
}

func TestHealthFailsWithoutDatabase(t *testing.T) {
	// Nothing listens on port 1.
	db, err := postgres.Open(context.Background(), postgres.Config{URL: "postgres://surge@127.0.0.1:1/surge?sslmode=disable&connect_timeout=1"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts := httptest.NewServer(results.New("r", db, redis.Shards{}, results.NewLive(db, slog.New(slog.DiscardHandler), time.Millisecond), slog.New(slog.DiscardHandler)).Handler())
	defer ts.Close()
	if status, _ := get(t, ts.URL+"/healthz"); status != 503 {
		t.Fatalf("healthz %d without a database", status)
	}
	if status, body := get(t, ts.URL+"/results/api/polls/cats-vs-dogs"); status != 503 {
		t.Fatalf("results %d without a database: %s", status, body)
	}
}

// GET /orders/<id> of a cart: its status, reason, lines and total as JSON,
// and as a page that names the lines at fault; an unknown id is a 404.
func TestCartOrderStatus(t *testing.T) {
	db := testenv.Postgres(t)
	ctx := context.Background()
	p1, p2 := surge.Cents(1250), surge.Cents(199)
	mug, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "Mug <b>", Quantity: 5, Price: &p1})
	if err != nil {
		t.Fatal(err)
	}
	pen, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "Pen", Quantity: 1, Price: &p2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ApplyOrders(ctx, []surge.Order{
		{ID: "ok", Lines: []surge.OrderLine{{Item: mug.ID, Quantity: 2}, {Item: pen.ID, Quantity: 1}}},
		{ID: "short", Lines: []surge.OrderLine{{Item: mug.ID, Quantity: 1}, {Item: pen.ID, Quantity: 1}}},
		{ID: "one", Lines: []surge.OrderLine{{Item: mug.ID, Quantity: 1}}},
	}); err != nil {
		t.Fatal(err)
	}
	live := results.NewLive(db, slog.New(slog.DiscardHandler), time.Millisecond)
	ts := httptest.NewServer(results.New("r", db, redis.Shards{}, live, slog.New(slog.DiscardHandler)).Handler())
	defer ts.Close()
	for _, tt := range []struct {
		id     string
		status int
		want   string
	}{
		{"ok", 200, fmt.Sprintf(`{"order_id":"ok","status":"confirmed","lines":[{"item":%d,"quantity":2,"name":"Mug <b>","price":"12.50"},{"item":%d,"quantity":1,"name":"Pen","price":"1.99"}],"total":"26.99"}`, mug.ID, pen.ID)},
		{"short", 200, fmt.Sprintf(`{"order_id":"short","status":"rejected","reason":"out_of_stock","lines":[{"item":%d,"quantity":1,"name":"Mug <b>","price":"12.50"},{"item":%d,"quantity":1,"name":"Pen","price":"1.99","reason":"out_of_stock"}],"total":"14.49"}`, mug.ID, pen.ID)},
		{"one", 200, fmt.Sprintf(`{"order_id":"one","status":"confirmed","item":%d,"quantity":1,"lines":[{"item":%d,"quantity":1,"name":"Mug <b>","price":"12.50"}],"total":"12.50"}`, mug.ID, mug.ID)},
		{"nope", 404, ""},
	} {
		status, body := get(t, ts.URL+"/orders/"+tt.id)
		var got, want any
		json.Unmarshal([]byte(body), &got)
		json.Unmarshal([]byte(tt.want), &want)
		if status != tt.status || (tt.want != "" && !reflect.DeepEqual(got, want)) {
			t.Fatalf("GET /orders/%s: %d %s\nwant %d %s", tt.id, status, body, tt.status, tt.want)
		}
	}
	req, _ := http.NewRequest("GET", ts.URL+"/orders/short", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"Rejected", "Nothing was taken", "Mug &lt;b&gt;", `class="line at-fault" data-item="` + fmt.Sprint(pen.ID), "not enough left", `id="total">14.49<`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("order page lacks %q:\n%s", want, page)
		}
	}
}
