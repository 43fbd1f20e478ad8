package drain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// ---- fakes ----

type deadLetter struct {
	id     string
	reason string
}

// fakeQueue is a scripted Queue. ReadOwnPending, Claim and ReadNew return
// their scripted batches in turn; once ReadNew has none left it blocks
// until ctx ends.
type fakeQueue struct {
	log *testenv.EventLog

	mu         sync.Mutex
	own        [][]redis.Message // successive ReadOwnPending answers
	ownAfter   []string          // the after argument of each ReadOwnPending call
	claims     [][]redis.Message // successive Claim answers (next cursor is always "0-0")
	news       [][]redis.Message // successive ReadNew answers
	readNews   int               // ReadNew calls
	acked      []string
	ackCalls   int
	ackFails   int // the first ackFails Ack calls fail
	newFails   int // the first newFails ReadNew calls fail
	dead       []deadLetter
	deadErr    error // returned by DeadLetter when set
	deadFailed []string
	backlog    redis.Backlog // what Backlog answers
	backlogErr error
}

func (q *fakeQueue) EnsureGroup(ctx context.Context) error {
	q.log.Add("ensure-group")
	return nil
}

func (q *fakeQueue) ReadOwnPending(ctx context.Context, after string, count int64) ([]redis.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ownAfter = append(q.ownAfter, after)
	var out []redis.Message
	if len(q.own) > 0 {
		out, q.own = q.own[0], q.own[1:]
	}
	q.log.Add("read-own-pending after=%s -> %s", after, msgIDs(out))
	return out, nil
}

func (q *fakeQueue) ReadNew(ctx context.Context, count int64, block time.Duration) ([]redis.Message, error) {
	q.mu.Lock()
	q.readNews++
	if q.newFails > 0 {
		q.newFails--
		q.mu.Unlock()
		q.log.Add("read-new failed")
		return nil, errors.New("connection reset")
	}
	if len(q.news) > 0 {
		var out []redis.Message
		out, q.news = q.news[0], q.news[1:]
		q.mu.Unlock()
		q.log.Add("read-new -> %s", msgIDs(out))
		return out, nil
	}
	q.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

func (q *fakeQueue) Claim(ctx context.Context, start string, minIdle time.Duration, count int64) ([]redis.Message, string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []redis.Message
	if len(q.claims) > 0 {
		out, q.claims = q.claims[0], q.claims[1:]
	}
	q.log.Add("claim start=%s -> %s", start, msgIDs(out))
	return out, "0-0", nil
}

func (q *fakeQueue) Ack(ctx context.Context, ids ...string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ackCalls++
	if q.ackFails > 0 {
		q.ackFails--
		q.log.Add("ack failed %s", strings.Join(ids, ","))
		return errors.New("connection reset")
	}
	q.acked = append(q.acked, ids...)
	q.log.Add("ack %s", strings.Join(ids, ","))
	return nil
}

func (q *fakeQueue) DeadLetter(ctx context.Context, m redis.Message, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deadErr != nil {
		q.deadFailed = append(q.deadFailed, m.ID)
		q.log.Add("dead-letter-failed %s", m.ID)
		return q.deadErr
	}
	q.dead = append(q.dead, deadLetter{m.ID, reason})
	q.log.Add("dead-letter %s", m.ID)
	return nil
}

func (q *fakeQueue) Trim(ctx context.Context) (int64, error) { return 0, nil }

func (q *fakeQueue) Backlog(ctx context.Context) (redis.Backlog, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.backlog, q.backlogErr
}

func (q *fakeQueue) ackedIDs() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.acked)
}

func (q *fakeQueue) deadLetters() []deadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.dead)
}

// fakeStore is a scripted Store. behave decides the answer of call n
// (0-based) from its votes; nil means every call succeeds with nothing
// rejected. When the call succeeds, orders get the status orderStatus
// gives them, or are confirmed if it is nil.
type fakeStore struct {
	log         *testenv.EventLog
	q           *fakeQueue // to check nothing is acked before its commit
	behave      func(n int, votes []surge.Vote) ([]surge.Vote, error)
	orderStatus func(surge.Order) string

	mu         sync.Mutex
	calls      [][]string // vote ids of each call
	violations []string
}

func (s *fakeStore) Apply(ctx context.Context, votes []surge.Vote, orders []surge.Order) ([]surge.Vote, []surge.OrderOutcome, error) {
	ids := voteIDs(votes)
	for _, o := range orders {
		ids = append(ids, o.ID)
	}
	s.mu.Lock()
	n := len(s.calls)
	s.calls = append(s.calls, ids)
	s.mu.Unlock()
	s.log.Add("apply-begin %s", strings.Join(ids, ","))

	// No entry may be acknowledged before the transaction applying it returns.
	acked := s.q.ackedIDs()
	for _, id := range ids {
		if slices.Contains(acked, streamIDOf(id)) {
			s.mu.Lock()
			s.violations = append(s.violations, id+" acked before Apply returned")
			s.mu.Unlock()
		}
	}
	if ctx.Err() != nil {
		s.mu.Lock()
		s.violations = append(s.violations, "Apply called with a done context")
		s.mu.Unlock()
	}

	var rejected []surge.Vote
	var outcomes []surge.OrderOutcome
	var err error
	if s.behave != nil {
		rejected, err = s.behave(n, votes)
	}
	if err == nil {
		for _, o := range orders {
			status := surge.OrderConfirmed
			if s.orderStatus != nil {
				status = s.orderStatus(o)
			}
			outcomes = append(outcomes, surge.OrderOutcome{ID: o.ID, Status: status})
		}
	}
	s.log.Add("apply-end %s err=%v", strings.Join(ids, ","), err)
	return rejected, outcomes, err
}

func (s *fakeStore) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func (s *fakeStore) allCalls() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// ---- helpers ----

// Stream id n-0 carries vote vn or order on.
func streamIDOf(entryID string) string { return entryID[1:] + "-0" }

func testVote(n int) surge.Vote {
	return surge.Vote{
		ID:      fmt.Sprintf("v%d", n),
		Poll:    "cats-vs-dogs",
		Choice:  "cats",
		Voter:   fmt.Sprintf("voter-%d", n),
		Version: 1_700_000_000_000_000 + int64(n),
		Node:    "web-1",
		At:      time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// voteMsg is stream entry n-0 carrying vote vn, with its fields as Redis
// returns them (strings).
func voteMsg(t *testing.T, n int, deliveries int64) redis.Message {
	t.Helper()
	return redis.Message{ID: fmt.Sprintf("%d-0", n), Values: fieldsAsRedis(surge.EncodeVote(testVote(n))), Deliveries: deliveries}
}

// orderMsg is stream entry n-0 carrying order on.
func orderMsg(t *testing.T, n int, deliveries int64) redis.Message {
	t.Helper()
	order := surge.Order{ID: fmt.Sprintf("o%d", n), Lines: []surge.OrderLine{{Item: 7, Quantity: 2}}, Node: "web-1"}
	return redis.Message{ID: fmt.Sprintf("%d-0", n), Values: fieldsAsRedis(surge.EncodeOrder(order)), Deliveries: deliveries}
}

// fieldsAsRedis turns XADD arguments into the map a Redis read returns:
// every value a string.
func fieldsAsRedis(args []any) map[string]any {
	values := make(map[string]any, len(args)/2)
	for i := 0; i < len(args); i += 2 {
		switch v := args[i+1].(type) {
		case []byte:
			values[args[i].(string)] = string(v)
		default:
			values[args[i].(string)] = fmt.Sprint(v)
		}
	}
	return values
}

func msgIDs(msgs []redis.Message) string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return strings.Join(ids, ",")
}

func voteIDs(votes []surge.Vote) []string {
	ids := make([]string, len(votes))
	for i, v := range votes {
		ids[i] = v.ID
	}
	return ids
}

func testOptions() Options {
	return Options{
		Shard:         "shard-a",
		BatchSize:     10,
		Block:         10 * time.Millisecond,
		ClaimIdle:     time.Hour,
		ClaimEvery:    time.Hour, // Claim runs once at start, then not again
		TrimEvery:     time.Hour,
		MaxDeliveries: 3,
		FinishTimeout: 5 * time.Second,
		Metrics:       NewMetrics(nil),
	}
}

type harness struct {
	q     *fakeQueue
	store *fakeStore
	opt   Options
	shard *Shard // set by start
}

func newHarness(behave func(n int, votes []surge.Vote) ([]surge.Vote, error)) *harness {
	log := &testenv.EventLog{}
	q := &fakeQueue{log: log}
	return &harness{q: q, store: &fakeStore{log: log, q: q, behave: behave}, opt: testOptions()}
}

// start runs the shard in a goroutine. stop cancels its context and waits
// for Run to return.
func (h *harness) start(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h.shard = NewShard(h.q, h.store, h.opt)
	go func() { done <- h.shard.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(30 * time.Second): // failsafe against a hang, not a timing assertion
				t.Fatalf("Run did not return after its context was cancelled\nevents:\n%s",
					strings.Join(h.q.log.Snapshot(), "\n"))
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitUntil waits until cond holds; it fails the test only if that takes
// absurdly long (a hang), with the events so far.
func (h *harness) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := testenv.WaitFor(context.Background(), 30*time.Second, func() error {
		if !cond() {
			return errors.New("never saw: " + what)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, strings.Join(h.q.log.Snapshot(), "\n"))
	}
}

func (h *harness) checkNoViolations(t *testing.T) {
	t.Helper()
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	for _, v := range h.store.violations {
		t.Errorf("store saw: %s", v)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func deadIDs(dl []deadLetter) []string {
	ids := make([]string, len(dl))
	for i, d := range dl {
		ids[i] = d.id
	}
	return ids
}

func deadLetteredMetric(t *testing.T, h *harness, reason string) float64 {
	return counterValue(t, h.opt.Metrics.DeadLettered.WithLabelValues(h.opt.Shard, reason))
}

// counterValue reads a counter, like prometheus/testutil.ToFloat64 (which
// cannot be imported without adding github.com/kylelemons/godebug to go.mod).
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	if m.Counter == nil {
		t.Fatalf("metric is not a counter: %v", &m)
	}
	return m.Counter.GetValue()
}

// ---- tests ----

func TestShardAppliesBatchThenAcks(t *testing.T) {
	h := newHarness(nil)
	h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 1), voteMsg(t, 3, 1)}}
	stop := h.start(t)
	h.waitUntil(t, "3 acks", func() bool { return len(h.q.ackedIDs()) == 3 })
	stop()

	if got, want := h.q.ackedIDs(), []string{"1-0", "2-0", "3-0"}; !slices.Equal(got, want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	if calls, want := h.store.allCalls(), [][]string{{"v1", "v2", "v3"}}; len(calls) != 1 || !slices.Equal(calls[0], want[0]) {
		t.Fatalf("store calls %v, want %v (one batch)", calls, want)
	}
	if dl := h.q.deadLetters(); len(dl) != 0 {
		t.Fatalf("dead-lettered %v, want none", dl)
	}
	events := h.q.log.Snapshot()
	end := slices.Index(events, "apply-end v1,v2,v3 err=<nil>")
	ack := slices.Index(events, "ack 1-0,2-0,3-0")
	if end < 0 || ack < 0 || ack < end {
		t.Fatalf("want apply-end before ack, events:\n%s", strings.Join(events, "\n"))
	}
	h.checkNoViolations(t)
	if got := counterValue(t, h.opt.Metrics.Applied.WithLabelValues(h.opt.Shard)); got != 3 {
		t.Fatalf("applied metric = %v, want 3", got)
	}
}

func TestShardAfterCommitRunsBetweenCommitAndAck(t *testing.T) {
	h := newHarness(nil)
	h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 1)}}
	var mu sync.Mutex
	var hooked [][]string
	h.opt.AfterCommit = func(ids []string) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, slices.Clone(ids))
		h.q.log.Add("after-commit %s", strings.Join(ids, ","))
	}
	stop := h.start(t)
	h.waitUntil(t, "2 acks", func() bool { return len(h.q.ackedIDs()) == 2 })
	stop()

	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 1 || !slices.Equal(hooked[0], []string{"1-0", "2-0"}) {
		t.Fatalf("AfterCommit got %v, want [[1-0 2-0]]", hooked)
	}
	events := h.q.log.Snapshot()
	end := slices.Index(events, "apply-end v1,v2 err=<nil>")
	hook := slices.Index(events, "after-commit 1-0,2-0")
	ack := slices.Index(events, "ack 1-0,2-0")
	if !(end >= 0 && end < hook && hook < ack) {
		t.Fatalf("want apply-end < after-commit < ack, events:\n%s", strings.Join(events, "\n"))
	}
}

func TestShardAppliesVotesAndOrdersTogether(t *testing.T) {
	h := newHarness(nil)
	h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), orderMsg(t, 2, 1), voteMsg(t, 3, 1)}}
	stop := h.start(t)
	h.waitUntil(t, "3 acks", func() bool { return len(h.q.ackedIDs()) == 3 })
	stop()

	if got, want := h.q.ackedIDs(), []string{"1-0", "2-0", "3-0"}; !slices.Equal(got, want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	// One transaction: the votes, then the orders.
	if calls, want := h.store.allCalls(), [][]string{{"v1", "v3", "o2"}}; !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("store calls %v, want %v", calls, want)
	}
	h.checkNoViolations(t)
}

func TestShardDeadLettersUndecodable(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
	}{
		{"bad JSON", map[string]any{surge.FieldKind: surge.KindVote, surge.FieldData: `{"id":`}},
		{"unknown kind", map[string]any{surge.FieldKind: "ballot", surge.FieldData: `{}`}},
		{"missing data", map[string]any{surge.FieldKind: surge.KindVote}},
		{"flat vote, version not a number", map[string]any{surge.FieldKind: surge.KindVote, surge.FieldID: "v2", surge.FieldPoll: "p",
			surge.FieldChoice: "c", surge.FieldVoter: "x", surge.FieldVersion: "1e3", surge.FieldNode: "", surge.FieldAt: ""}},
		{"valid JSON, invalid vote", map[string]any{surge.FieldKind: surge.KindVote, surge.FieldData: `{"id":"v2","poll":"p","choice":"c","voter":"x","version":0}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			poison := redis.Message{ID: "2-0", Values: tt.values, Deliveries: 1}
			h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), poison, voteMsg(t, 3, 1)}}
			stop := h.start(t)
			h.waitUntil(t, "2 acks and 1 dead letter", func() bool {
				return len(h.q.ackedIDs()) == 2 && len(h.q.deadLetters()) == 1
			})
			stop()

			dl := h.q.deadLetters()
			if len(dl) != 1 || dl[0].id != "2-0" || !strings.Contains(dl[0].reason, "undecodable") {
				t.Fatalf("dead letters %+v, want 2-0 with reason containing \"undecodable\"", dl)
			}
			if got, want := sorted(h.q.ackedIDs()), []string{"1-0", "3-0"}; !slices.Equal(got, want) {
				t.Fatalf("acked %v, want %v", got, want)
			}
			if calls := h.store.allCalls(); len(calls) != 1 || !slices.Equal(calls[0], []string{"v1", "v3"}) {
				t.Fatalf("store calls %v, want [[v1 v3]]", calls)
			}
			if got := deadLetteredMetric(t, h, "undecodable"); got != 1 {
				t.Fatalf("surge_worker_dead_letters_total{reason=undecodable} = %v, want 1", got)
			}
			h.checkNoViolations(t)
		})
	}
}

func TestShardAcksDeletedEntryWithoutApplying(t *testing.T) {
	h := newHarness(nil)
	h.q.own = [][]redis.Message{{{ID: "1-0", Values: nil, Deliveries: 2}, voteMsg(t, 2, 2)}}
	stop := h.start(t)
	h.waitUntil(t, "2 acks", func() bool { return len(h.q.ackedIDs()) == 2 })
	stop()

	if got, want := sorted(h.q.ackedIDs()), []string{"1-0", "2-0"}; !slices.Equal(got, want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	if calls := h.store.allCalls(); len(calls) != 1 || !slices.Equal(calls[0], []string{"v2"}) {
		t.Fatalf("store calls %v, want [[v2]]", calls)
	}
	if dl := h.q.deadLetters(); len(dl) != 0 {
		t.Fatalf("dead-lettered %v, want none", dl)
	}
}

func TestShardRetriesTransientStoreErrors(t *testing.T) {
	h := newHarness(func(n int, votes []surge.Vote) ([]surge.Vote, error) {
		if n < 2 {
			return nil, surge.Unavailable("database", errors.New("connection refused"))
		}
		return nil, nil
	})
	h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 1)}}
	stop := h.start(t)
	h.waitUntil(t, "2 acks", func() bool { return len(h.q.ackedIDs()) == 2 })
	stop()

	if got, want := h.q.ackedIDs(), []string{"1-0", "2-0"}; !slices.Equal(got, want) {
		t.Fatalf("acked %v, want %v (each once)", got, want)
	}
	if dl := h.q.deadLetters(); len(dl) != 0 {
		t.Fatalf("dead-lettered %v, want none", dl)
	}
	calls := h.store.allCalls()
	if len(calls) != 3 {
		t.Fatalf("store calls %v, want 3 tries of the whole batch", calls)
	}
	for _, c := range calls {
		if !slices.Equal(c, []string{"v1", "v2"}) {
			t.Fatalf("store calls %v, want the whole batch each time", calls)
		}
	}
	if got := counterValue(t, h.opt.Metrics.StoreErrors.WithLabelValues(h.opt.Shard)); got != 2 {
		t.Fatalf("store errors metric = %v, want 2", got)
	}
	h.checkNoViolations(t)
}

func TestShardIsolatesPermanentFailure(t *testing.T) {
	// Any transaction containing v2 fails for good.
	h := newHarness(func(n int, votes []surge.Vote) ([]surge.Vote, error) {
		if slices.ContainsFunc(votes, func(v surge.Vote) bool { return v.ID == "v2" }) {
			return nil, errors.New("check constraint violated")
		}
		return nil, nil
	})
	h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 1), voteMsg(t, 3, 1)}}
	stop := h.start(t)
	h.waitUntil(t, "2 acks and 1 dead letter", func() bool {
		return len(h.q.ackedIDs()) == 2 && len(h.q.deadLetters()) == 1
	})
	stop()

	dl := h.q.deadLetters()
	if len(dl) != 1 || dl[0].id != "2-0" || !strings.HasPrefix(dl[0].reason, "failed") ||
		!strings.Contains(dl[0].reason, "check constraint violated") {
		t.Fatalf("dead letters %+v, want 2-0 with reason \"failed: check constraint violated\"", dl)
	}
	if got, want := sorted(h.q.ackedIDs()), []string{"1-0", "3-0"}; !slices.Equal(got, want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	calls := h.store.allCalls()
	want := [][]string{{"v1", "v2", "v3"}, {"v1"}, {"v2"}, {"v3"}}
	if !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("store calls %v, want %v", calls, want)
	}
	if got := deadLetteredMetric(t, h, "failed"); got != 1 {
		t.Fatalf("dead letter metric {reason=failed} = %v, want 1", got)
	}
	h.checkNoViolations(t)
}

func TestShardOverDeliveredEntriesAppliedAlone(t *testing.T) {
	// v3 fails for good wherever it is; v1 and v2 are fine.
	h := newHarness(func(n int, votes []surge.Vote) ([]surge.Vote, error) {
		if slices.ContainsFunc(votes, func(v surge.Vote) bool { return v.ID == "v3" }) {
			return nil, errors.New("row too big")
		}
		return nil, nil
	})
	// Replayed pending entries: 1 delivered once, 2 and 3 past MaxDeliveries (3).
	h.q.own = [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 4), voteMsg(t, 3, 9)}}
	stop := h.start(t)
	h.waitUntil(t, "2 acks and 1 dead letter", func() bool {
		return len(h.q.ackedIDs()) == 2 && len(h.q.deadLetters()) == 1
	})
	stop()

	if got, want := sorted(h.q.ackedIDs()), []string{"1-0", "2-0"}; !slices.Equal(got, want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	dl := h.q.deadLetters()
	if len(dl) != 1 || dl[0].id != "3-0" || !strings.HasPrefix(dl[0].reason, "failed") {
		t.Fatalf("dead letters %+v, want 3-0 with reason \"failed: ...\"", dl)
	}
	calls := h.store.allCalls()
	want := [][]string{{"v1"}, {"v2"}, {"v3"}}
	if !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("store calls %v, want %v (suspects applied one at a time)", calls, want)
	}
	h.checkNoViolations(t)
}

func TestShardOverDeliveredTransientNotDeadLettered(t *testing.T) {
	// An over-delivered entry whose store is briefly down is retried, not dead-lettered.
	h := newHarness(func(n int, votes []surge.Vote) ([]surge.Vote, error) {
		if n == 0 {
			return nil, surge.Unavailable("database", errors.New("failover"))
		}
		return nil, nil
	})
	h.q.own = [][]redis.Message{{voteMsg(t, 1, 50)}}
	stop := h.start(t)
	h.waitUntil(t, "1 ack", func() bool { return len(h.q.ackedIDs()) == 1 })
	stop()

	if got := h.q.ackedIDs(); !slices.Equal(got, []string{"1-0"}) {
		t.Fatalf("acked %v, want [1-0]", got)
	}
	if dl := h.q.deadLetters(); len(dl) != 0 {
		t.Fatalf("dead-lettered %v, want none", dl)
	}
}

func TestShardDeadLettersRejectedVotes(t *testing.T) {
	h := newHarness(func(n int, votes []surge.Vote) ([]surge.Vote, error) {
		var rejected []surge.Vote
		for _, v := range votes {
			if v.ID == "v2" || v.ID == "v4" {
				rejected = append(rejected, v)
			}
		}
		return rejected, nil
	})
	h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 1), voteMsg(t, 3, 1), voteMsg(t, 4, 1)}}
	stop := h.start(t)
	h.waitUntil(t, "2 acks and 2 dead letters", func() bool {
		return len(h.q.ackedIDs()) == 2 && len(h.q.deadLetters()) == 2
	})
	stop()

	if got, want := sorted(h.q.ackedIDs()), []string{"1-0", "3-0"}; !slices.Equal(got, want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	dl := h.q.deadLetters()
	if got, want := sorted(deadIDs(dl)), []string{"2-0", "4-0"}; !slices.Equal(got, want) {
		t.Fatalf("dead-lettered %v, want %v", got, want)
	}
	for _, d := range dl {
		if !strings.HasPrefix(d.reason, "unknown poll or option") {
			t.Fatalf("dead letter %s reason %q, want \"unknown poll or option\"", d.id, d.reason)
		}
	}
	if got := deadLetteredMetric(t, h, "unknown poll or option"); got != 2 {
		t.Fatalf("dead letter metric {reason=unknown poll or option} = %v, want 2", got)
	}
	if got := counterValue(t, h.opt.Metrics.Applied.WithLabelValues(h.opt.Shard)); got != 2 {
		t.Fatalf("applied metric = %v, want 2 (rejected votes are not applied)", got)
	}
	if calls := h.store.allCalls(); len(calls) != 1 {
		t.Fatalf("store calls %v, want one batch (rejection is not a failure)", calls)
	}
	h.checkNoViolations(t)
}

// The reason stored with a rejected vote's dead letter should read
// "unknown poll or option", not carry a formatted nil cause.
func TestShardRejectedReasonHasNoNilCause(t *testing.T) {
	h := newHarness(func(n int, votes []surge.Vote) ([]surge.Vote, error) { return votes, nil })
	h.q.news = [][]redis.Message{{voteMsg(t, 1, 1)}}
	stop := h.start(t)
	h.waitUntil(t, "1 dead letter", func() bool { return len(h.q.deadLetters()) == 1 })
	stop()

	if dl := h.q.deadLetters(); dl[0].reason != "unknown poll or option" {
		t.Fatalf("dead letter reason = %q, want %q", dl[0].reason, "unknown poll or option")
	}
}

func TestShardDeadLetterFailureLeavesEntryPending(t *testing.T) {
	h := newHarness(nil)
	h.q.deadErr = errors.New("redis down")
	poison := redis.Message{ID: "2-0", Values: map[string]any{surge.FieldKind: "nope"}, Deliveries: 1}
	h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), poison}}
	stop := h.start(t)
	h.waitUntil(t, "1 ack", func() bool { return len(h.q.ackedIDs()) == 1 })
	stop()

	if got := h.q.ackedIDs(); !slices.Equal(got, []string{"1-0"}) {
		t.Fatalf("acked %v, want [1-0] (the poison entry stays pending)", got)
	}
	if got := deadLetteredMetric(t, h, "undecodable"); got != 0 {
		t.Fatalf("dead letter metric = %v, want 0 when DeadLetter failed", got)
	}
	h.q.mu.Lock()
	defer h.q.mu.Unlock()
	if !slices.Equal(h.q.deadFailed, []string{"2-0"}) {
		t.Fatalf("DeadLetter attempts %v, want [2-0]", h.q.deadFailed)
	}
}

func TestShardShutdownWhileStoreDown(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, h *harness)
	}{
		{"new batch", func(t *testing.T, h *harness) {
			h.q.news = [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 1)}}
		}},
		{"replayed batch", func(t *testing.T, h *harness) {
			h.q.own = [][]redis.Message{{voteMsg(t, 1, 2), voteMsg(t, 2, 2)}}
		}},
		{"over-delivered entry", func(t *testing.T, h *harness) {
			h.q.own = [][]redis.Message{{voteMsg(t, 1, 10)}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(func(n int, votes []surge.Vote) ([]surge.Vote, error) {
				return nil, surge.Unavailable("database", errors.New("connection refused"))
			})
			tt.setup(t, h)
			stop := h.start(t)
			h.waitUntil(t, "2 store attempts", func() bool { return h.store.callCount() >= 2 })
			stop() // fails the test if Run does not return

			if got := h.q.ackedIDs(); len(got) != 0 {
				t.Fatalf("acked %v, want nothing (entries stay pending)", got)
			}
			if dl := h.q.deadLetters(); len(dl) != 0 {
				t.Fatalf("dead-lettered %v, want nothing", dl)
			}
			h.checkNoViolations(t)
		})
	}
}

func TestShardReplaysOwnPendingFirst(t *testing.T) {
	h := newHarness(nil)
	h.opt.BatchSize = 2
	h.q.own = [][]redis.Message{
		{voteMsg(t, 1, 2), voteMsg(t, 2, 2)},
		{voteMsg(t, 3, 2)},
	}
	h.q.news = [][]redis.Message{{voteMsg(t, 4, 1)}}
	stop := h.start(t)
	h.waitUntil(t, "4 acks", func() bool { return len(h.q.ackedIDs()) == 4 })
	stop()

	if got, want := h.q.ackedIDs(), []string{"1-0", "2-0", "3-0", "4-0"}; !slices.Equal(got, want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	h.q.mu.Lock()
	after := slices.Clone(h.q.ownAfter)
	h.q.mu.Unlock()
	if want := []string{"0", "2-0", "3-0"}; !slices.Equal(after, want) {
		t.Fatalf("ReadOwnPending after = %v, want %v", after, want)
	}
	calls := h.store.allCalls()
	if want := [][]string{{"v1", "v2"}, {"v3"}, {"v4"}}; !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("store calls %v, want %v", calls, want)
	}
	events := h.q.log.Snapshot()
	firstNew := slices.IndexFunc(events, func(e string) bool { return strings.HasPrefix(e, "read-new") })
	lastOwn := -1
	for i, e := range events {
		if e == "ack 1-0,2-0" || e == "ack 3-0" {
			lastOwn = i
		}
	}
	if firstNew < 0 || lastOwn < 0 || lastOwn > firstNew {
		t.Fatalf("want replayed entries applied and acked before the first ReadNew, events:\n%s",
			strings.Join(events, "\n"))
	}
	h.checkNoViolations(t)
}

// Entries left pending on this consumer by a failed ack, or by a read
// whose answer was lost, are replayed as soon as Redis answers again, not
// after ClaimIdle (an hour here).
func TestShardReplaysOwnPendingAfterRedisTrouble(t *testing.T) {
	tests := []struct {
		name               string
		ackFails, newFails int
		news, own          [][]redis.Message
		wantCalls          [][]string
		wantAfter          []string
	}{
		{
			name: "failed ack", ackFails: 1,
			news:      [][]redis.Message{{voteMsg(t, 1, 1), voteMsg(t, 2, 1)}},
			own:       [][]redis.Message{nil, {voteMsg(t, 1, 2), voteMsg(t, 2, 2)}},
			wantCalls: [][]string{{"v1", "v2"}, {"v1", "v2"}},
			wantAfter: []string{"0", "0", "2-0"},
		},
		{
			name: "failed read", newFails: 1,
			own:       [][]redis.Message{nil, {voteMsg(t, 3, 2)}},
			wantCalls: [][]string{{"v3"}},
			wantAfter: []string{"0", "0", "3-0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			h.q.ackFails, h.q.newFails, h.q.news, h.q.own = tt.ackFails, tt.newFails, tt.news, tt.own
			stop := h.start(t)
			h.waitUntil(t, "the entries acked", func() bool {
				return len(h.q.ackedIDs()) == len(tt.wantCalls[len(tt.wantCalls)-1])
			})
			stop()
			if calls := h.store.allCalls(); !slices.EqualFunc(calls, tt.wantCalls, slices.Equal) {
				t.Errorf("store calls %v, want %v", calls, tt.wantCalls)
			}
			h.q.mu.Lock()
			after := slices.Clone(h.q.ownAfter)
			h.q.mu.Unlock()
			if !slices.Equal(after, tt.wantAfter) {
				t.Errorf("ReadOwnPending after = %v, want %v\nevents:\n%s", after, tt.wantAfter, strings.Join(h.q.log.Snapshot(), "\n"))
			}
			h.checkNoViolations(t)
		})
	}
}

func TestShardProcessesClaimedEntries(t *testing.T) {
	h := newHarness(nil)
	h.q.claims = [][]redis.Message{{voteMsg(t, 1, 2), voteMsg(t, 2, 7)}}
	stop := h.start(t)
	h.waitUntil(t, "2 acks", func() bool { return len(h.q.ackedIDs()) == 2 })
	stop()

	if got, want := sorted(h.q.ackedIDs()), []string{"1-0", "2-0"}; !slices.Equal(got, want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	if calls, want := h.store.allCalls(), [][]string{{"v1"}, {"v2"}}; !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("store calls %v, want %v (2-0 is over-delivered, applied alone)", calls, want)
	}
	if got := counterValue(t, h.opt.Metrics.Claimed.WithLabelValues(h.opt.Shard)); got != 2 {
		t.Fatalf("claimed metric = %v, want 2", got)
	}
}

func TestOptionsDefaults(t *testing.T) {
	var o Options
	o.defaults()
	if o.BatchSize != 2000 || o.Block != time.Second || o.ClaimIdle != 30*time.Second ||
		o.ClaimEvery != 10*time.Second || o.TrimEvery != 10*time.Second || o.MaxDeliveries != 5 ||
		o.FinishTimeout != 10*time.Second || o.Logger == nil || o.Metrics == nil {
		t.Fatalf("defaults = %+v", o)
	}
	o = Options{ClaimIdle: 9 * time.Second, BatchSize: 7}
	o.defaults()
	if o.ClaimEvery != 3*time.Second || o.BatchSize != 7 {
		t.Fatalf("ClaimEvery = %v, BatchSize = %d; want 3s and 7", o.ClaimEvery, o.BatchSize)
	}
}

func TestIsTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"unavailable", surge.Unavailable("database", errors.New("x")), true},
		{"wrapped unavailable", fmt.Errorf("apply: %w", surge.Unavailable("database", errors.New("x"))), true},
		{"plain", errors.New("x"), false},
		{"invalid", surge.Errorf(surge.EINVALID, "x"), false},
		{"context canceled", context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isTransient(tt.err); got != tt.want {
				t.Fatalf("isTransient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
