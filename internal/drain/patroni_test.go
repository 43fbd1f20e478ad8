package drain_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/drain"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// Two workers drain a shard that keeps filling into a Patroni cluster, and
// the primary's machine dies mid-drain. A batch whose commit failed or
// whose outcome is unknown stays un-acked and is applied again on the new
// primary: once drained, every vote counts once, every order is decided
// once, no unit is sold twice or oversold, and nothing is left pending.
func TestDrainAcrossPrimaryLoss(t *testing.T) {
	r := testenv.Redis(t)
	c := testenv.RedisClient(t, r)
	p := testenv.Patroni(t, 3)
	db := testenv.PostgresClient(t, p.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.EnsurePolls(ctx, surge.DefaultPolls()); err != nil {
		t.Fatal(err)
	}
	const stock = 100
	ten := surge.Cents(1000)
	item, _, err := db.UpsertItem(ctx, surge.ItemInput{Name: "Sneaker", Quantity: stock, Price: &ten})
	if err != nil {
		t.Fatal(err)
	}
	queue := newConsumer(t, r.Addr, "w1")
	runShard(t, queue, db, drain.Options{Shard: "1", BatchSize: 20})
	runShard(t, newConsumer(t, r.Addr, "w2"), db, drain.Options{Shard: "1", BatchSize: 20})

	// The shard fills at a steady pace: one vote from a new voter, and
	// every tenth entry an order for 1 to 3 units, until stopped.
	prod := produce(t, c, item.ID)
	applied := func(n int64) func() error {
		return func() error {
			res, err := db.Results(ctx, surge.DefaultPollID)
			if err != nil {
				return err
			}
			if res.Total < n {
				return fmt.Errorf("%d votes applied, want %d", res.Total, n)
			}
			return nil
		}
	}
	// Bounds: n entries applied at no less than the rate floor of answers
	// through HAProxy, which a drain on this machine far exceeds.
	testenv.Eventually(t, testenv.AnswersBound(300), applied(300))

	st, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.KillMember(st.Primary); err != nil {
		t.Fatal(err)
	}
	before := prod.votes()
	primary := testenv.WaitFailover(t, p, st.Primary)
	t.Logf("failover from %s to %s; %d votes queued at the kill", p.Members[st.Primary].Name, p.Members[primary].Name, before)
	// Workers apply again, on the new primary, past what was queued when
	// the old one died.
	testenv.Eventually(t, testenv.AnswersBound(int(before)), applied(before+100))
	want, orders := prod.stop()

	testenv.Eventually(t, testenv.AnswersBound(int(want["cats"]+want["dogs"])), func() error {
		res, err := db.Results(ctx, surge.DefaultPollID)
		b, berr := queue.Backlog(ctx)
		if err == nil && berr == nil && b.Drained() && res.Counts["cats"] == want["cats"] && res.Counts["dogs"] == want["dogs"] {
			return nil
		}
		return fmt.Errorf("counts %v (err %v), backlog %+v (err %v); want %v", res.Counts, err, b, berr, want)
	})
	var rows, decided, sold, left int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM votes`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(quantity) FILTER (WHERE status = 'confirmed'), 0) FROM orders`).
		Scan(&decided, &sold); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT quantity FROM items WHERE id = $1`, item.ID).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if rows != want["cats"]+want["dogs"] {
		t.Errorf("%d vote rows, want %d (one per voter)", rows, want["cats"]+want["dogs"])
	}
	if decided != orders {
		t.Errorf("%d orders decided, want %d", decided, orders)
	}
	if sold+left != stock || left < 0 {
		t.Errorf("%d units sold and %d left of %d: oversold or sold twice", sold, left, stock)
	}
	t.Logf("%d votes, %d orders (%d units sold, %d left) drained across the failover", rows, decided, sold, left)
}

// producer fills a shard with votes and orders.
type producer struct {
	mu     sync.Mutex
	counts map[string]int64
	orders int64
	halt   chan struct{}
	done   chan struct{}
}

func produce(t *testing.T, c *goredis.Client, item int64) *producer {
	p := &producer{counts: map[string]int64{}, halt: make(chan struct{}), done: make(chan struct{})}
	// Paced like a load tool, 500 entries a second: a backlog the workers
	// clear within seconds once Postgres is back.
	tick := time.NewTicker(2 * time.Millisecond)
	go func() {
		defer close(p.done)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.halt:
				return
			case <-tick.C:
			}
			var fields []any
			choice := []string{"cats", "dogs"}[i%2]
			if i%10 == 9 {
				fields = surge.EncodeOrder(surge.Order{ID: fmt.Sprintf("order-%d", i), Lines: []surge.OrderLine{{Item: item, Quantity: 1 + i%3}}})
			} else {
				fields = surge.EncodeVote(surge.Vote{ID: fmt.Sprintf("vote-%d", i), Poll: surge.DefaultPollID, Choice: choice,
					Voter: fmt.Sprintf("voter-%d", i), Version: 1})
			}
			if err := c.XAdd(context.Background(), &goredis.XAddArgs{Stream: stream, Values: fields}).Err(); err != nil {
				t.Error(err)
				return
			}
			p.mu.Lock()
			if i%10 == 9 {
				p.orders++
			} else {
				p.counts[choice]++
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// votes is the number of votes queued so far.
func (p *producer) votes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts["cats"] + p.counts["dogs"]
}

// stop stops producing and returns what was queued.
func (p *producer) stop() (map[string]int64, int64) {
	select {
	case <-p.halt:
	default:
		close(p.halt)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts, p.orders
}
