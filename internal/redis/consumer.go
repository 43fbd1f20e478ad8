package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Message is a stream entry as delivered to a consumer.
type Message struct {
	ID         string
	Values     map[string]any // nil when the entry was deleted from the stream
	Deliveries int64          // times delivered, counting this one; 0 if unknown
}

// Consumer reads one shard's stream through a consumer group.
type Consumer struct {
	Client *goredis.Client
	Stream string
	Group  string
	Name   string // stable across restarts, so a restarted worker finds its own pending entries
}

// LostGroup reports whether err says the stream's consumer group is gone:
// the shard's Redis came back without its data (a new disk, a flushed
// database), so the group must be created again before anything is read.
func LostGroup(err error) bool {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "NOGROUP") || strings.HasPrefix(msg, "UNBLOCKED")
}

// EnsureGroup creates the stream and the group if they are missing.
func (c *Consumer) EnsureGroup(ctx context.Context) error {
	err := c.Client.XGroupCreateMkStream(ctx, c.Stream, c.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create group %s on %s: %w", c.Group, c.Stream, err)
	}
	return nil
}

// ReadOwnPending returns up to count entries already delivered to this
// consumer and not acknowledged, with ids greater than after ("0" to start).
func (c *Consumer) ReadOwnPending(ctx context.Context, after string, count int64) ([]Message, error) {
	return c.read(ctx, after, count, -1)
}

// ReadNew returns up to count entries never delivered to any consumer,
// waiting up to block for the first.
func (c *Consumer) ReadNew(ctx context.Context, count int64, block time.Duration) ([]Message, error) {
	return c.read(ctx, ">", count, block)
}

func (c *Consumer) read(ctx context.Context, id string, count int64, block time.Duration) ([]Message, error) {
	res, err := c.Client.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: c.Group, Consumer: c.Name, Streams: []string{c.Stream, id}, Count: count, Block: block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", id, c.Stream, err)
	}
	var out []Message
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, Message{ID: m.ID, Values: m.Values})
		}
	}
	if id == ">" {
		for i := range out {
			out[i].Deliveries = 1
		}
		return out, nil
	}
	if err := c.fillDeliveries(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Claim takes over up to count entries that have been pending on any
// consumer for at least minIdle, as a dead worker leaves them. It returns
// them with their delivery counts, and the cursor for the next call ("0-0"
// once the whole pending list was scanned).
func (c *Consumer) Claim(ctx context.Context, start string, minIdle time.Duration, count int64) ([]Message, string, error) {
	msgs, next, err := c.Client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
		Stream: c.Stream, Group: c.Group, Consumer: c.Name, MinIdle: minIdle, Start: start, Count: count,
	}).Result()
	if err != nil {
		return nil, start, fmt.Errorf("claim %s: %w", c.Stream, err)
	}
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message{ID: m.ID, Values: m.Values}
	}
	if err := c.fillDeliveries(ctx, out); err != nil {
		return nil, start, err
	}
	return out, next, nil
}

// fillDeliveries looks up the delivery counts of msgs in the pending list.
func (c *Consumer) fillDeliveries(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	pending, err := c.Client.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: c.Stream, Group: c.Group, Consumer: c.Name,
		Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: int64(len(msgs)) + 100,
	}).Result()
	if err != nil {
		return fmt.Errorf("pending counts on %s: %w", c.Stream, err)
	}
	counts := make(map[string]int64, len(pending))
	for _, p := range pending {
		counts[p.ID] = p.RetryCount
	}
	for i := range msgs {
		msgs[i].Deliveries = counts[msgs[i].ID]
	}
	return nil
}

// Ack acknowledges entries. Call it only after their effect is committed.
func (c *Consumer) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := c.Client.XAck(ctx, c.Stream, c.Group, ids...).Err(); err != nil {
		return fmt.Errorf("ack %d on %s: %w", len(ids), c.Stream, err)
	}
	return nil
}

// DeadLetter moves an entry to the dead-letter stream and acknowledges it,
// atomically, so it is neither lost nor retried.
func (c *Consumer) DeadLetter(ctx context.Context, m Message, reason string) error {
	values := []any{"stream", c.Stream, "id", m.ID, "reason", reason, "consumer", c.Name}
	for k, v := range m.Values {
		values = append(values, "field:"+k, v)
	}
	_, err := c.Client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.XAdd(ctx, &goredis.XAddArgs{Stream: DeadLetterStream, Values: values})
		p.XAck(ctx, c.Stream, c.Group, m.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead-letter %s on %s: %w", m.ID, c.Stream, err)
	}
	return nil
}

// Backlog is how far the group is behind on a stream.
type Backlog struct {
	Pending int64 `json:"pending"` // delivered, not acknowledged
	Lag     int64 `json:"lag"`     // not yet delivered
}

// Drained reports whether every entry was delivered and acknowledged.
func (b Backlog) Drained() bool { return b.Pending == 0 && b.Lag == 0 }

// Backlog returns the group's pending count and lag.
func (c *Consumer) Backlog(ctx context.Context) (Backlog, error) {
	groups, err := c.Client.XInfoGroups(ctx, c.Stream).Result()
	if err != nil {
		return Backlog{}, fmt.Errorf("backlog of %s: %w", c.Stream, err)
	}
	for _, g := range groups {
		if g.Name != c.Group {
			continue
		}
		b := Backlog{Pending: g.Pending, Lag: g.Lag}
		if g.Lag < 0 { // Redis cannot tell after some deletions; compare ids instead
			info, err := c.Client.XInfoStream(ctx, c.Stream).Result()
			if err != nil {
				return Backlog{}, fmt.Errorf("backlog of %s: %w", c.Stream, err)
			}
			b.Lag = 0
			if info.LastGeneratedID != g.LastDeliveredID {
				b.Lag = 1
			}
		}
		return b, nil
	}
	return Backlog{}, fmt.Errorf("backlog of %s: no group %s", c.Stream, c.Group)
}

// Oldest returns the age of the oldest entry the group has not
// acknowledged: the lowest pending id, or else the first entry not yet
// delivered; 0 when there is none. A stream id is a time in milliseconds on
// that Redis's clock, so the age is measured against that clock (TIME), not
// ours.
func (c *Consumer) Oldest(ctx context.Context) (time.Duration, error) {
	groups, err := c.Client.XInfoGroups(ctx, c.Stream).Result()
	if err != nil {
		return 0, fmt.Errorf("oldest entry of %s: %w", c.Stream, err)
	}
	i := slices.IndexFunc(groups, func(g goredis.XInfoGroup) bool { return g.Name == c.Group })
	if i < 0 {
		return 0, fmt.Errorf("oldest entry of %s: no group %s", c.Stream, c.Group)
	}
	var oldest string
	if groups[i].Pending > 0 {
		p, err := c.Client.XPending(ctx, c.Stream, c.Group).Result()
		if err != nil {
			return 0, fmt.Errorf("oldest entry of %s: %w", c.Stream, err)
		}
		oldest = p.Lower // empty if acknowledged since XINFO
	}
	if oldest == "" {
		// Entries past the last delivered one are waiting for a first read.
		next, err := c.Client.XRangeN(ctx, c.Stream, "("+groups[i].LastDeliveredID, "+", 1).Result()
		if err != nil {
			return 0, fmt.Errorf("oldest entry of %s: %w", c.Stream, err)
		}
		if len(next) == 0 {
			return 0, nil
		}
		oldest = next[0].ID
	}
	now, err := c.Client.Time(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("oldest entry of %s: %w", c.Stream, err)
	}
	ms, _ := splitID(oldest)
	return max(now.Sub(time.UnixMilli(int64(ms))), 0), nil
}

// Trim deletes entries that every consumer of the group is done with: those
// below both the oldest pending entry and the last delivered one. Entries
// still pending are never trimmed (XTRIM would drop them from the group's
// pending list, losing them).
func (c *Consumer) Trim(ctx context.Context) (int64, error) {
	groups, err := c.Client.XInfoGroups(ctx, c.Stream).Result()
	if err != nil {
		return 0, fmt.Errorf("trim %s: %w", c.Stream, err)
	}
	var minID string
	for _, g := range groups {
		limit := g.LastDeliveredID
		if g.Pending > 0 {
			p, err := c.Client.XPending(ctx, c.Stream, g.Name).Result()
			if err != nil {
				return 0, fmt.Errorf("trim %s: %w", c.Stream, err)
			}
			if p.Count > 0 { // it may have emptied since XINFO
				limit = p.Lower
			}
		}
		if minID == "" || compareIDs(limit, minID) < 0 {
			minID = limit
		}
	}
	if minID == "" || minID == "0-0" {
		return 0, nil
	}
	n, err := c.Client.XTrimMinID(ctx, c.Stream, minID).Result()
	if err != nil {
		return 0, fmt.Errorf("trim %s below %s: %w", c.Stream, minID, err)
	}
	return n, nil
}

// compareIDs orders stream ids "ms-seq".
func compareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}

// Shards is the read-only view of every shard that the result service has:
// pending-order marks and the workers' backlog.
type Shards struct {
	Clients []*goredis.Client
	Stream  string
	Group   string
}

// ShardBacklog is one shard's backlog. Shards are named by their number
// (1, 2, … in the configured order), not by address: the answer is public.
type ShardBacklog struct {
	Shard int `json:"shard"`
	Backlog
}

// Backlog returns every shard's backlog. A stream or group that does not
// exist yet has nothing to drain.
func (o Shards) Backlog(ctx context.Context) ([]ShardBacklog, error) {
	out := make([]ShardBacklog, 0, len(o.Clients))
	for i, c := range o.Clients {
		q := Consumer{Client: c, Stream: o.Stream, Group: o.Group}
		b, err := q.Backlog(ctx)
		if err != nil {
			n, xerr := c.Exists(ctx, o.Stream).Result()
			if xerr != nil || n > 0 {
				return nil, err
			}
		}
		out = append(out, ShardBacklog{Shard: i + 1, Backlog: b})
	}
	return out, nil
}

// Pending reports whether some shard holds an order id that a worker may not
// have applied yet. An unreachable shard is an error: the order could be there.
func (o Shards) Pending(ctx context.Context, id string) (bool, error) {
	var unreachable error
	for _, c := range o.Clients {
		n, err := c.Exists(ctx, OrderKey(id)).Result()
		if err != nil {
			unreachable = fmt.Errorf("look up order %s on %s: %w", id, c.Options().Addr, err)
			continue
		}
		if n > 0 {
			return true, nil
		}
	}
	return false, unreachable
}
