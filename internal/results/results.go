// Package results is the read side: poll counts as JSON and as a page.
package results

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/telemetry"
	"github.com/surge-vote/surge/internal/ui"
)

// Config is the result service's configuration.
type Config struct {
	Listen string `mapstructure:"listen"`
	// Go's profiles, loopback only; "": off (package profiling).
	DebugListen string          `mapstructure:"debug_listen"`
	Node        string          `mapstructure:"node"`
	Postgres    postgres.Config `mapstructure:"postgres"`
	Polls       []surge.Poll    `mapstructure:"polls"`
	LogLevel    string          `mapstructure:"log_level"`
	// Every shard, to tell a pending order from an unknown one.
	Shards        []string `mapstructure:"shards"`
	RedisPassword string   `mapstructure:"redis_password"`
	Stream        string   `mapstructure:"stream"`
	Group         string   `mapstructure:"group"`
	// PushInterval is the most often a poll's results are read and pushed.
	PushInterval time.Duration `mapstructure:"push_interval"`
	// MaxStreams caps live-result streams (503 past it); 0: no cap.
	MaxStreams int `mapstructure:"max_streams"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:       "127.0.0.1:8090",
		Postgres:     postgres.Config{URL: "postgres://surge@127.0.0.1:5432/surge?sslmode=disable", MaxConns: 10},
		Polls:        surge.DefaultPolls(),
		LogLevel:     "info",
		Stream:       redis.DefaultStream,
		Group:        "workers",
		PushInterval: 200 * time.Millisecond,
		MaxStreams:   2000,
	}
}

// Store is what the result service reads.
type Store interface {
	Polls(ctx context.Context) ([]surge.Poll, error)
	Results(ctx context.Context, poll string) (surge.Results, error)
	// Watermarks returns each poll's commit sequence (surge.Results.Seq).
	Watermarks(ctx context.Context) (map[string]int64, error)
	OrderState(ctx context.Context, id string) (surge.OrderState, error)
	Ping(ctx context.Context) error
	StockReader
}

// Notifications is how the live results hub hears of changes: Postgres LISTEN/NOTIFY
// (postgres.DB.Listen). Listen calls onNotify for each notification on
// channels and onState whenever it starts or stops listening, until ctx
// ends.
type Notifications interface {
	Listen(ctx context.Context, log *slog.Logger, channels []string, onNotify func(channel, payload string), onState func(listening bool))
}

// Queues is what the result service knows of the shards: orders queued but
// perhaps not yet applied, and how far the workers are behind.
type Queues interface {
	Pending(ctx context.Context, id string) (bool, error)
	Backlog(ctx context.Context) ([]redis.ShardBacklog, error)
}

// Server serves results.
type Server struct {
	node   string
	store  Store
	queued Queues
	live   *Live
	log    *slog.Logger
	reg    *prometheus.Registry
	engine *gin.Engine
	now    func() time.Time // a poll's state is judged by it
}

// New builds the routes.
func New(node string, store Store, queued Queues, live *Live, log *slog.Logger) *Server {
	s := &Server{node: node, store: store, queued: queued, live: live, log: log, reg: telemetry.NewRegistry(), now: time.Now}
	s.reg.MustRegister(live.Reads, live.PushLag, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "surge_results_stream_clients", Help: "Connected live-result streams.",
	}, func() float64 { return float64(live.Subscribers()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "surge_results_stream_lag_seconds", Help: "How long the oldest commit heard of (NOTIFY) has waited for its push to the live streams; 0 when they show every commit heard of.",
		}, func() float64 { return live.Lag().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "surge_results_listening", Help: "1 while result hears of commits (Postgres LISTEN), else 0: the live streams get no pushes.",
		}, func() float64 {
			if live.Listening() {
				return 1
			}
			return 0
		}),
		NewStockCollector(store, log))
	r, err := httpx.NewEngine(httpx.EngineOptions{Service: "result", Node: node, Log: log, Registry: s.reg,
		Health: func(ctx context.Context) error { return httpx.Down("postgres", store.Ping(ctx)) }})
	if err != nil {
		panic(err) // no trusted proxies: cannot fail
	}
	r.GET("/results", s.getPage)
	r.GET("/results/api/polls", s.getPolls)
	r.GET("/results/api/polls/:poll", s.getPoll)
	r.GET("/results/api/polls/:poll/export", s.getExport)
	r.GET("/results/api/stream", s.getStream)
	r.GET("/results/api/backlog", s.getBacklog)
	r.GET("/orders/:id", s.getOrder)
	s.engine = r
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

func (s *Server) getPoll(c *gin.Context) {
	snap, err := s.live.Snapshot(c.Request.Context(), c.Param("poll"))
	if err != nil {
		httpx.Error(c, s.log, unavailableUnlessDomain(err))
		return
	}
	c.JSON(http.StatusOK, snap.Results)
}

// getOrder answers an order's state: applied (confirmed or rejected) from
// Postgres, pending while a shard still holds it, else unknown.
func (s *Server) getOrder(c *gin.Context) {
	id := c.Param("id")
	if !surge.ValidOrderID(id) {
		httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown order %q", id))
		return
	}
	st, err := s.orderState(c.Request.Context(), id)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if strings.Contains(c.GetHeader("Accept"), "text/html") {
		c.Header("Content-Type", "text/html; charset=utf-8")
		c.Status(http.StatusOK)
		if err := ui.Render(c.Writer, "order.html", ui.Page{Title: "Order " + id, Node: s.node, Data: st}); err != nil {
			s.log.Error("render order page", "err", err)
		}
		return
	}
	c.JSON(http.StatusOK, st)
}

// orderState finds an order: applied (confirmed or rejected) in Postgres,
// pending while a shard still holds it, else unknown.
func (s *Server) orderState(ctx context.Context, id string) (surge.OrderState, error) {
	st, err := s.store.OrderState(ctx, id)
	if err == nil {
		return st, nil
	}
	if surge.ErrorCode(err) != surge.ENOTFOUND {
		return surge.OrderState{}, unavailableUnlessDomain(err)
	}
	pending, err := s.queued.Pending(ctx, id)
	switch {
	case pending:
		return surge.OrderState{OrderID: id, Status: surge.OrderPending}, nil
	case err != nil:
		return surge.OrderState{}, surge.Unavailable("queue", err)
	}
	// Applied between the two look-ups, or never queued.
	if st, err := s.store.OrderState(ctx, id); err == nil {
		return st, nil
	}
	return surge.OrderState{}, surge.Errorf(surge.ENOTFOUND, "unknown order %q", id)
}

// Backlog is the answer of the backlog endpoint.
type Backlog struct {
	// Drained: every shard is drained, and the results served now include
	// every entry the workers applied.
	Drained bool                 `json:"drained"`
	Shards  []redis.ShardBacklog `json:"shards"`
	// Seq is each poll's commit sequence once drained: results whose seq
	// is at least this include every applied vote.
	Seq map[string]int64 `json:"seq,omitempty"`
}

// getBacklog tells whether the workers have drained every shard and the
// results include all they applied: what a load tool waits for before it
// verifies. The order matters: a worker acknowledges only after its commit,
// so the sequences read once the shards are drained cover every applied
// entry, and the cache is brought up to them before the answer.
func (s *Server) getBacklog(c *gin.Context) {
	ctx := c.Request.Context()
	shards, err := s.queued.Backlog(ctx)
	if err != nil {
		httpx.Error(c, s.log, surge.Unavailable("queue", err))
		return
	}
	b := Backlog{Drained: true, Shards: shards}
	for _, sh := range shards {
		b.Drained = b.Drained && sh.Drained()
	}
	if b.Drained {
		if b.Seq, err = s.store.Watermarks(ctx); err == nil {
			err = s.live.CatchUp(ctx, b.Seq)
		}
		if err != nil {
			httpx.Error(c, s.log, unavailableUnlessDomain(err))
			return
		}
	}
	c.JSON(http.StatusOK, b)
}

func (s *Server) getPolls(c *gin.Context) {
	views, err := s.pollViews(c.Request.Context())
	if err != nil {
		httpx.Error(c, s.log, unavailableUnlessDomain(err))
		return
	}
	out := make([]surge.Results, len(views))
	for i, v := range views {
		out[i] = v.Results
	}
	c.JSON(http.StatusOK, out)
}

// PollView is one poll on the results page.
type PollView struct {
	ID, Title string
	Total     int64
	Rows      []Row
	Results   surge.Results
	UpdatedAt time.Time
}

// Row is one option's count.
type Row struct {
	Option string
	Count  int64
}

func (s *Server) pollViews(ctx context.Context) ([]PollView, error) {
	polls, err := s.live.Polls(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]PollView, 0, len(polls))
	for _, p := range polls {
		snap, err := s.live.Snapshot(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		res := snap.Results
		v := PollView{ID: p.ID, Title: p.Title, Total: res.Total, Results: res, UpdatedAt: res.UpdatedAt}
		for _, o := range p.Options {
			v.Rows = append(v.Rows, Row{Option: o, Count: res.Counts[o]})
		}
		views = append(views, v)
	}
	return views, nil
}

func (s *Server) getPage(c *gin.Context) {
	views, err := s.pollViews(c.Request.Context())
	if err != nil {
		httpx.Error(c, s.log, unavailableUnlessDomain(err))
		return
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	if err := ui.Render(c.Writer, "results.html", ui.Page{Title: "Results", Node: s.node, Data: views}); err != nil {
		s.log.Error("render results page", "err", err)
	}
}

// getStream pushes results as Server-Sent Events: every poll on connect,
// then each poll whenever a worker commits a change to it.
func (s *Server) getStream(c *gin.Context) {
	sub, leave, err := s.live.Subscribe() // before the first snapshot: miss nothing
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	defer leave()
	ctx := c.Request.Context()
	polls, err := s.live.Polls(ctx)
	if err != nil {
		httpx.Error(c, s.log, unavailableUnlessDomain(err))
		return
	}
	w := c.Writer
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	for _, p := range polls {
		snap, err := s.live.Snapshot(ctx, p.ID)
		if err != nil {
			return
		}
		if writeEvent(w, snap) != nil {
			return
		}
	}
	w.Flush()
	heartbeat := time.NewTicker(15 * time.Second) // keeps proxies from timing the stream out
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.live.Done():
			return
		case <-heartbeat.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
		case <-sub.Ready():
			for _, snap := range sub.Take() {
				if writeEvent(w, snap) != nil {
					return
				}
			}
		}
		w.Flush()
	}
}

func writeEvent(w io.Writer, snap Snapshot) error {
	b, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: results\ndata: %s\n\n", b)
	return err
}

// unavailableUnlessDomain turns a failure to reach the database into a 503.
func unavailableUnlessDomain(err error) error {
	if surge.ErrorCode(err) != surge.EINTERNAL {
		return err
	}
	if postgres.IsTransient(err) {
		return surge.Unavailable("database", err)
	}
	return err
}
