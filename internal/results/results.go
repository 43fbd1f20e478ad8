// Package results is the read side: poll counts as JSON and as a page.
package results

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
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
	Listen   string          `mapstructure:"listen"`
	Node     string          `mapstructure:"node"`
	Postgres postgres.Config `mapstructure:"postgres"`
	Polls    []surge.Poll    `mapstructure:"polls"`
	LogLevel string          `mapstructure:"log_level"`
	// Every shard, to tell a pending order from an unknown one.
	Shards        []string `mapstructure:"shards"`
	RedisPassword string   `mapstructure:"redis_password"`
	Stream        string   `mapstructure:"stream"`
	Group         string   `mapstructure:"group"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:   "127.0.0.1:8090",
		Postgres: postgres.Config{URL: "postgres://surge@127.0.0.1:5432/surge?sslmode=disable", MaxConns: 10},
		Polls:    surge.DefaultPolls(),
		LogLevel: "info",
		Stream:   redis.DefaultStream,
		Group:    "workers",
	}
}

// Store is what the result service reads.
type Store interface {
	Polls(ctx context.Context) ([]surge.Poll, error)
	Results(ctx context.Context, poll string) (surge.Results, error)
	OrderState(ctx context.Context, id string) (surge.OrderState, error)
	Ping(ctx context.Context) error
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
	log    *slog.Logger
	reg    *prometheus.Registry
	engine *gin.Engine
}

// New builds the routes.
func New(node string, store Store, queued Queues, log *slog.Logger) *Server {
	s := &Server{node: node, store: store, queued: queued, log: log, reg: telemetry.NewRegistry()}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		httpx.Error(c, s.log, fmt.Errorf("panic: %v", rec))
	}))
	r.Use(telemetry.HTTPMetrics(s.reg, "result"))
	r.GET("/results", s.getPage)
	r.GET("/results/api/polls", s.getPolls)
	r.GET("/results/api/polls/:poll", s.getPoll)
	r.GET("/results/api/backlog", s.getBacklog)
	r.GET("/orders/:id", s.getOrder)
	r.GET("/healthz", s.getHealth)
	r.GET("/metrics", telemetry.MetricsHandler(s.reg))
	r.StaticFS("/static", ui.Static())
	r.NoRoute(func(c *gin.Context) { httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "no such page")) })
	s.engine = r
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

func (s *Server) getPoll(c *gin.Context) {
	res, err := s.store.Results(c.Request.Context(), c.Param("poll"))
	if err != nil {
		httpx.Error(c, s.log, unavailableUnlessDomain(err))
		return
	}
	c.JSON(http.StatusOK, res)
}

// getOrder answers an order's state: applied (confirmed or rejected) from
// Postgres, pending while a shard still holds it, else unknown.
func (s *Server) getOrder(c *gin.Context) {
	id := c.Param("id")
	if !surge.ValidOrderID(id) {
		httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown order %q", id))
		return
	}
	st, err := s.store.OrderState(c.Request.Context(), id)
	if err == nil {
		c.JSON(http.StatusOK, st)
		return
	}
	if surge.ErrorCode(err) != surge.ENOTFOUND {
		httpx.Error(c, s.log, unavailableUnlessDomain(err))
		return
	}
	pending, err := s.queued.Pending(c.Request.Context(), id)
	switch {
	case pending:
		c.JSON(http.StatusOK, surge.OrderState{OrderID: id, Status: surge.OrderPending})
	case err != nil:
		httpx.Error(c, s.log, surge.Unavailable("queue", err))
	default:
		// Applied between the two look-ups, or never queued.
		if st, err := s.store.OrderState(c.Request.Context(), id); err == nil {
			c.JSON(http.StatusOK, st)
			return
		}
		httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown order %q", id))
	}
}

// getBacklog tells whether the workers have drained every shard: what a
// load tool waits for before it verifies.
func (s *Server) getBacklog(c *gin.Context) {
	shards, err := s.queued.Backlog(c.Request.Context())
	if err != nil {
		httpx.Error(c, s.log, surge.Unavailable("queue", err))
		return
	}
	drained := true
	for _, b := range shards {
		drained = drained && b.Drained()
	}
	c.JSON(http.StatusOK, gin.H{"drained": drained, "shards": shards})
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
}

// Row is one option's count.
type Row struct {
	Option string
	Count  int64
}

func (s *Server) pollViews(ctx context.Context) ([]PollView, error) {
	polls, err := s.store.Polls(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]PollView, 0, len(polls))
	for _, p := range polls {
		res, err := s.store.Results(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		v := PollView{ID: p.ID, Title: p.Title, Total: res.Total, Results: res}
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

func (s *Server) getHealth(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "node": s.node, "error": "postgres: " + err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "node": s.node})
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
