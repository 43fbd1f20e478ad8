// Package redis wraps the Redis Streams that carry captured entries: the
// producer a frontend appends with, and the consumer a worker drains with.
package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Config locates one shard's Redis and names its stream.
type Config struct {
	Addr     string `mapstructure:"addr"`
	Password string `mapstructure:"password"`
	Stream   string `mapstructure:"stream"`
}

// DefaultStream is the stream name on every shard.
const DefaultStream = "surge:entries"

// OrderKey is the per-shard key that marks an order id as taken; the result
// service reads it as "pending" until a worker has applied the order.
func OrderKey(id string) string { return "surge:order:" + id }

// DeadLetterStream receives entries that can never be applied.
const DeadLetterStream = "surge:dead"

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("producer closed")

// ErrDuplicate is returned by AppendOnce when the key was already taken
// with the same value: a repeat.
var ErrDuplicate = errors.New("duplicate key")

// ErrConflict is returned by AppendOnce when the key was already taken with
// another value: the same key for something else.
var ErrConflict = errors.New("key taken with another value")

// appendOnce takes KEYS[1] (value ARGV[1], ttl ARGV[2] seconds) and, only if
// it was free, adds ARGV[3..] to stream KEYS[2]. A key already taken answers
// nil if it holds the same value (or "pending", what keys held before they
// carried a value), and 0 if it holds another. A script is atomic, and its
// effects reach the AOF as one transaction.
const appendOnce = `
local held = redis.call('GET', KEYS[1])
if held then
  if held == ARGV[1] or held == 'pending' then return false end
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))`

// NewClient returns a go-redis client for cfg.
func NewClient(cfg Config, poolSize int) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr:         cfg.Addr,
		Password:     cfg.Password,
		PoolSize:     poolSize,
		DialTimeout:  time.Second,
		ReadTimeout:  3 * time.Second,
		WriteTimeout: 3 * time.Second,
		MaxRetries:   -1, // an XADD is not idempotent: never resend it blindly
		// One dial: a refused one fails at once (go-redis would otherwise
		// dial 5 times, 100 ms apart), so a frontend whose Redis is gone
		// answers 503 at once and HAProxy takes it out of rotation at
		// that first 503, instead of letting requests pile onto it for
		// the retries' half second. Callers have their own backoff.
		DialerRetries: 1,
	})
}

// CheckDurable returns an error unless the server writes its append-only
// file with fsync on every write, the condition for acknowledging on XADD.
func CheckDurable(ctx context.Context, c *goredis.Client) error {
	cfg, err := c.ConfigGet(ctx, "append*").Result()
	if err != nil {
		return fmt.Errorf("check redis durability: %w", err)
	}
	if cfg["appendonly"] != "yes" || cfg["appendfsync"] != "always" {
		return fmt.Errorf("redis at %s is not durable: appendonly=%q appendfsync=%q, want yes/always",
			c.Options().Addr, cfg["appendonly"], cfg["appendfsync"])
	}
	return nil
}

// Producer appends entries to one stream. Concurrent appends are gathered
// into pipelines by a few collector goroutines: a collector takes what is
// waiting, waits up to a short collect window for more (up to MaxBatch),
// sends it as one pipeline, and answers every caller with its own entry's
// result. With appendfsync always, Redis fsyncs before it replies, so an
// answered Append is durable. Fewer, fuller pipelines cost Redis and the
// frontend less per entry than one round trip each.
type Producer struct {
	client   *goredis.Client
	stream   string
	maxBatch int
	window   time.Duration
	timeout  time.Duration
	reqs     chan *appendReq
	quit     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	observe  func(batch int)
}

type appendReq struct {
	fields  []any
	onceKey string // set: append only if this key is free (AppendOnce)
	once    []any  // value and ttl for onceKey
	done    chan appendResult
}

type appendResult struct {
	id  string
	err error
}

// ProducerOptions tune a Producer.
type ProducerOptions struct {
	Collectors int             // goroutines sending pipelines; default 2
	MaxBatch   int             // entries per pipeline; default 128
	Window     time.Duration   // how long a collector waits for more entries; 0 = send what is waiting
	Timeout    time.Duration   // per pipeline; default 2s
	Observe    func(batch int) // called with each pipeline's size, for metrics
}

var reqPool = sync.Pool{New: func() any { return &appendReq{done: make(chan appendResult, 1)} }}

// NewProducer starts the collectors.
func NewProducer(client *goredis.Client, stream string, opt ProducerOptions) *Producer {
	if opt.Collectors <= 0 {
		opt.Collectors = 2
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 128
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.Observe == nil {
		opt.Observe = func(int) {}
	}
	p := &Producer{
		client: client, stream: stream, maxBatch: opt.MaxBatch, window: opt.Window, timeout: opt.Timeout,
		reqs: make(chan *appendReq, opt.Collectors*opt.MaxBatch), quit: make(chan struct{}),
		observe: opt.Observe,
	}
	for range opt.Collectors {
		p.wg.Add(1)
		go p.collect()
	}
	return p
}

// Append adds an entry and returns its stream id once Redis has written it.
// An error means the entry's fate is unknown to the caller: it was not
// acknowledged, so the caller must not report success.
func (p *Producer) Append(ctx context.Context, fields []any) (string, error) {
	return p.append(ctx, fields, "", nil)
}

// AppendOnce appends only if key is free, and then holds key (with value,
// for ttl) so a repeat is refused: with ErrDuplicate if it comes with the
// same value, ErrConflict if with another. Both happen atomically.
func (p *Producer) AppendOnce(ctx context.Context, key, value string, ttl time.Duration, fields []any) (string, error) {
	return p.append(ctx, fields, key, []any{value, int64(ttl / time.Second)})
}

func (p *Producer) append(ctx context.Context, fields []any, onceKey string, once []any) (string, error) {
	r := reqPool.Get().(*appendReq)
	r.fields, r.onceKey, r.once = fields, onceKey, once
	select {
	case p.reqs <- r:
	case <-p.quit:
		reqPool.Put(r)
		return "", ErrClosed
	case <-ctx.Done():
		reqPool.Put(r)
		return "", fmt.Errorf("append to %s: %w", p.stream, ctx.Err())
	}
	select {
	case res := <-r.done:
		r.fields, r.once = nil, nil
		reqPool.Put(r)
		if errors.Is(res.err, goredis.Nil) {
			return "", ErrDuplicate
		}
		if res.err != nil {
			return "", fmt.Errorf("append to %s: %w", p.stream, res.err)
		}
		return res.id, nil
	case <-ctx.Done():
		// The collector still owns r and will write to r.done; don't reuse it.
		return "", fmt.Errorf("append to %s: %w", p.stream, ctx.Err())
	}
}

// Close stops the collectors after the queued requests are answered. Call
// it once no more Append calls can start (after the HTTP server shut down).
func (p *Producer) Close() {
	p.once.Do(func() { close(p.quit) })
	p.wg.Wait()
}

func (p *Producer) collect() {
	defer p.wg.Done()
	batch := make([]*appendReq, 0, p.maxBatch)
	window := time.NewTimer(time.Hour)
	window.Stop()
	for {
		var first *appendReq
		select {
		case first = <-p.reqs:
		case <-p.quit:
			// Answer whatever is still queued, then stop.
			for {
				select {
				case r := <-p.reqs:
					p.send([]*appendReq{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	gather:
		for len(batch) < p.maxBatch {
			select {
			case r := <-p.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		if p.window > 0 && len(batch) < p.maxBatch {
			window.Reset(p.window)
		wait:
			for len(batch) < p.maxBatch {
				select {
				case r := <-p.reqs:
					batch = append(batch, r)
				case <-window.C:
					break wait
				}
			}
			window.Stop()
		}
		p.send(batch)
	}
}

func (p *Producer) send(batch []*appendReq) {
	p.observe(len(batch))
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	pipe := p.client.Pipeline()
	results := make([]func() (string, error), len(batch))
	for i, r := range batch {
		if r.onceKey != "" {
			results[i] = onceResult(pipe.Eval(ctx, appendOnce, []string{r.onceKey, p.stream}, append(r.once, r.fields...)...))
			continue
		}
		results[i] = pipe.XAdd(ctx, &goredis.XAddArgs{Stream: p.stream, Values: r.fields}).Result
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, r := range batch {
		id, err := results[i]()
		r.done <- appendResult{id: id, err: err}
	}
}

// onceResult reads appendOnce's answer: a stream id, nil (goredis.Nil: a
// repeat) or 0 (a conflict).
func onceResult(cmd *goredis.Cmd) func() (string, error) {
	return func() (string, error) {
		v, err := cmd.Result()
		if err != nil {
			return "", err
		}
		if id, ok := v.(string); ok {
			return id, nil
		}
		return "", ErrConflict
	}
}
