// Package capture is the public web frontend: it takes votes and orders over
// HTTP and appends each to the streams of `copies` shards (package copies),
// answering 202 only once the entry is durable on every one of them, and
// serves the vote pages, the shop and the catalogue. The admin service is
// package admin.
package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/surge-vote/surge/internal/accounts"
	"github.com/surge-vote/surge/internal/catalog"
	"github.com/surge-vote/surge/internal/copies"
	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/telemetry"
	"github.com/surge-vote/surge/internal/ui"
	"github.com/surge-vote/surge/internal/voter"
)

// Config is the public frontend's configuration.
type Config struct {
	Postgres    postgres.Config `mapstructure:"postgres"`      // the catalogue and polls, read through a cache; optional
	OrderKeyTTL time.Duration   `mapstructure:"order_key_ttl"` // how long a repeated order_id is recognised on a shard
	VoterRate   float64         `mapstructure:"voter_rate"`    // votes per second per voter; 0: no limit
	VoterBurst  int             `mapstructure:"voter_burst"`
	// TrustedProxies may set X-Forwarded-For and X-Forwarded-Proto: HAProxy's
	// addresses, no more (a client there could write them too).
	TrustedProxies []string     `mapstructure:"trusted_proxies"`
	Listen         string       `mapstructure:"listen"`
	DebugListen    string       `mapstructure:"debug_listen"` // Go's profiles, loopback only; "": off (package profiling)
	Node           string       `mapstructure:"node"`         // shown on pages and in receipts; defaults to the hostname
	Redis          redis.Config `mapstructure:"redis"`        // this shard's Redis; password and stream hold for every shard
	// Shards are every shard's Redis, in the workers' order; empty: the
	// one shard at redis.addr. Shard is this frontend's own among them,
	// from 1; 0: the one whose address is redis.addr.
	Shards []string `mapstructure:"shards"`
	Shard  int      `mapstructure:"shard"`
	// Copies is how many shards hold an entry before its 202; 0: 2 with
	// several shards, 1 with one (a one-node install).
	Copies         int           `mapstructure:"copies"`
	RequireDurable bool          `mapstructure:"require_durable"` // refuse a Redis without appendfsync always
	CookieKeys     []string      `mapstructure:"cookie_keys"`     // secret; the first signs, all verify
	CookieSecure   bool          `mapstructure:"cookie_secure"`   // set behind TLS
	Polls          []surge.Poll  `mapstructure:"polls"`
	MaxBody        int64         `mapstructure:"max_body"`
	AppendTimeout  time.Duration `mapstructure:"append_timeout"`
	Collectors     int           `mapstructure:"collectors"`
	MaxBatch       int           `mapstructure:"max_batch"`
	CollectWindow  time.Duration `mapstructure:"collect_window"`
	LogLevel       string        `mapstructure:"log_level"`
	// Per client address (an IPv6 /64), per frontend replica, per minute;
	// 0: no limit.
	NewVotersPerIP int `mapstructure:"new_voters_per_ip"` // votes without a valid voter cookie
	NewVotersBurst int `mapstructure:"new_voters_burst"`
	OrdersPerIP    int `mapstructure:"orders_per_ip"`
	OrdersBurst    int `mapstructure:"orders_burst"`
	SignUpsPerIP   int `mapstructure:"signups_per_ip"` // new accounts
	SignUpsBurst   int `mapstructure:"signups_burst"`
	// Accounts live in the same Postgres; without postgres.url there are
	// none (their pages and accounts-only polls answer 503).
	Accounts accounts.Config `mapstructure:"accounts"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Postgres:       postgres.Config{MaxConns: 4},
		OrderKeyTTL:    24 * time.Hour,
		VoterRate:      5,
		VoterBurst:     20,
		NewVotersPerIP: 60,
		NewVotersBurst: 120,
		OrdersPerIP:    60,
		OrdersBurst:    120,
		SignUpsPerIP:   10,
		SignUpsBurst:   20,
		TrustedProxies: httpx.PrivateProxies(),
		Listen:         "127.0.0.1:8081",
		Redis:          redis.Config{Addr: "127.0.0.1:6379", Stream: redis.DefaultStream},
		RequireDurable: true,
		Polls:          surge.DefaultPolls(),
		MaxBody:        4 << 10,
		AppendTimeout:  2 * time.Second,
		Collectors:     2,
		MaxBatch:       128,
		CollectWindow:  100 * time.Microsecond,
		LogLevel:       "info",
		Accounts:       accounts.DefaultConfig(),
	}
}

// Queue is where entries go: an entry is durable there once an append
// returns (copies.Queue, over each shard's redis.Producer).
type Queue interface {
	Append(ctx context.Context, fields []any) (string, error)
	// AppendOnce appends unless key is taken: then it fails with
	// redis.ErrDuplicate if key holds value, redis.ErrConflict if not.
	AppendOnce(ctx context.Context, key, value string, ttl time.Duration, fields []any) (string, error)
	// Ping fails when the queue cannot take entries; an *httpx.Unhealthy
	// error names what is down (or only degraded) itself.
	Ping(ctx context.Context) error
}

// Catalogue is what the frontend reads of the polls and items
// (catalog.Cache, kept in step with Postgres).
type Catalogue interface {
	Poll(ctx context.Context, id string) (surge.Poll, bool)
	HasItem(ctx context.Context, id int64) (bool, error)
	ItemsJSON(ctx context.Context) ([]byte, error)
	Item(ctx context.Context, id int64) (surge.Item, bool, error)
	SearchJSON(ctx context.Context, q surge.ItemQuery) ([]byte, error)
	Ready() bool // the stored polls have been loaded once
}

// Orders tells which order a worker applied under an id (Postgres).
type Orders interface {
	OrderState(ctx context.Context, id string) (surge.OrderState, error)
}

// Accounts is the accounts side of the frontend (accounts.Service): its
// handlers, mounted in routes, and who is logged in.
type Accounts interface {
	PostAccount(c *gin.Context)
	PostLogin(c *gin.Context)
	PostLogout(c *gin.Context)
	GetMyOrders(c *gin.Context)
	GetSignUpPage(c *gin.Context)
	GetLoginPage(c *gin.Context)
	GetMyOrdersPage(c *gin.Context)
	// Signed is the account of r's signed session cookie, from its
	// signature alone: orders name their buyer while the store is down.
	Signed(r *http.Request) (int64, bool)
	// Session is the account of r's live session, checked in the store:
	// EUNAUTHORIZED without one, EUNAVAILABLE when the store is down.
	Session(ctx context.Context, r *http.Request) (int64, error)
}

// Server is the public frontend.
type Server struct {
	cfg     Config
	log     *slog.Logger
	queue   Queue
	catalog Catalogue // nil without postgres.url
	applied Orders    // nil without postgres.url
	accts   Accounts  // nil without postgres.url
	static  map[string]surge.Poll
	closers []func() // what New opened, closed in this order
	signer  *voter.Signer
	now     func() time.Time
	reg     *prometheus.Registry
	votes   *prometheus.CounterVec
	orders  prometheus.Counter
	handler http.Handler
	voters  *keyedLimiter // votes per known voter
	newbies *keyedLimiter // new voters per client address
	buyers  *keyedLimiter // orders per client address
	signups *keyedLimiter // new accounts per client address
	proxies httpx.Proxies // cfg.TrustedProxies, parsed
}

// Options are a Server's collaborators that are not configuration.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // the frontend's clock; tests skew it
	// Queue, if set, is used instead of the Redis at cfg.Redis; Catalogue
	// and Orders, if Catalogue is set, instead of the Postgres at
	// cfg.Postgres (Orders may be nil). Tests give fakes; the Server does
	// not close them.
	Queue     Queue
	Catalogue Catalogue
	Orders    Orders
	Accounts  Accounts // nil with a Catalogue given: no accounts
}

// New connects to the shard's Redis and builds the routes. It fails if the
// Redis is reachable but not durable and RequireDurable is set.
func New(ctx context.Context, cfg Config, opt Options) (*Server, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if len(cfg.CookieKeys) == 0 {
		return nil, errors.New("web: no cookie_keys configured (SURGE_COOKIE_KEYS or SURGE_COOKIE_KEYS_FILE)")
	}
	keys := make([][]byte, len(cfg.CookieKeys))
	for i, k := range cfg.CookieKeys {
		keys[i] = []byte(k)
	}
	signer, err := voter.NewSigner(keys)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	polls := make(map[string]surge.Poll, len(cfg.Polls))
	for _, p := range cfg.Polls {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		polls[p.ID] = p
	}
	if _, ok := polls[surge.DefaultPollID]; !ok && len(cfg.Polls) > 0 {
		polls[surge.DefaultPollID] = cfg.Polls[0] // the first poll is the default
	}
	proxies, err := httpx.ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s := &Server{cfg: cfg, log: opt.Logger, static: polls, signer: signer, now: opt.Now, proxies: proxies,
		queue: opt.Queue, catalog: opt.Catalogue, applied: opt.Orders, accts: opt.Accounts,
		reg: telemetry.NewRegistry(), voters: newKeyedLimiter(cfg.VoterRate, cfg.VoterBurst, opt.Now),
		newbies: newKeyedLimiter(float64(cfg.NewVotersPerIP)/60, cfg.NewVotersBurst, opt.Now),
		buyers:  newKeyedLimiter(float64(cfg.OrdersPerIP)/60, cfg.OrdersBurst, opt.Now),
		signups: newKeyedLimiter(float64(cfg.SignUpsPerIP)/60, cfg.SignUpsBurst, opt.Now)}
	s.votes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "surge_votes_captured_total", Help: "Votes acknowledged with 202, by poll.",
	}, []string{"poll"})
	batch := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "surge_capture_pipeline_size", Help: "Entries per XADD pipeline.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9),
	})
	s.orders = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "surge_orders_captured_total", Help: "Orders acknowledged with 202 (repeats excluded).",
	})
	s.reg.MustRegister(s.votes, s.orders, batch)
	for _, p := range cfg.Polls { // at zero from the start, so a rate works from the first vote
		s.votes.WithLabelValues(p.ID)
	}
	if s.queue == nil {
		if err := s.openQueue(ctx, cfg, batch); err != nil {
			return nil, err
		}
	}
	if s.catalog == nil {
		if err := s.openCatalog(cfg); err != nil {
			s.Close()
			return nil, err
		}
	}
	engine, err := s.routes()
	if err != nil {
		s.Close()
		return nil, err
	}
	// Another site must not make its visitors vote or order here (a hidden
	// form): cross-origin posts are refused (Sec-Fetch-Site / Origin).
	s.handler = httpx.CrossOriginProtection(engine)
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// redisShard is one shard's Redis as a copies.Shard.
type redisShard struct {
	*redis.Producer
	client *goredis.Client
}

func (q redisShard) Ping(ctx context.Context) error { return q.client.Ping(ctx).Err() }

// Ring returns every shard's Redis address, this frontend's own (from 0)
// and the copies each entry needs, from cfg's shards, shard, redis.addr
// and copies.
func (cfg Config) Ring() (addrs []string, own, n int, err error) {
	addrs, own, n = cfg.Shards, cfg.Shard-1, cfg.Copies
	if len(addrs) == 0 {
		addrs = []string{cfg.Redis.Addr}
		if cfg.Shard > 1 {
			return nil, 0, 0, fmt.Errorf("shard = %d, but shards lists no shards (only redis.addr)", cfg.Shard)
		}
		own = 0
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if a == "" || seen[a] {
			return nil, 0, 0, fmt.Errorf("shards %q: each shard's address once, none empty", addrs)
		}
		seen[a] = true
	}
	if cfg.Shard < 0 {
		return nil, 0, 0, fmt.Errorf("shard = %d: want the own shard's number in shards, from 1", cfg.Shard)
	}
	if cfg.Shard == 0 {
		own = slices.Index(addrs, cfg.Redis.Addr)
		if own < 0 {
			return nil, 0, 0, fmt.Errorf("redis.addr %s is not among shards; set shard to this frontend's own one's number", cfg.Redis.Addr)
		}
	}
	if n == 0 {
		n = min(2, len(addrs))
	}
	if err := copies.Check(len(addrs), own, n); err != nil {
		return nil, 0, 0, err
	}
	return addrs, own, n, nil
}

// openQueue connects to every shard's Redis, refusing one that answers and
// is not durable if cfg.RequireDurable, and writes each entry to
// cfg.Copies of them.
func (s *Server) openQueue(ctx context.Context, cfg Config, batch prometheus.Histogram) error {
	addrs, own, n, err := cfg.Ring()
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	if n == 1 {
		s.log.Warn("each entry is acknowledged with one copy: losing its shard's disk loses what was not drained yet", "copies", n)
	}
	shards := make([]copies.Shard, len(addrs))
	for i, addr := range addrs {
		rc := cfg.Redis
		rc.Addr = addr
		client := redis.NewClient(rc, cfg.Collectors*2+8)
		s.closers = append(s.closers, func() { client.Close() })
		if cfg.RequireDurable {
			if err := checkDurable(ctx, client); err != nil {
				s.Close()
				return fmt.Errorf("web: shard %d: %w", i+1, err)
			}
		}
		producer := redis.NewProducer(client, rc.Stream, redis.ProducerOptions{
			Collectors: cfg.Collectors, MaxBatch: cfg.MaxBatch, Window: cfg.CollectWindow, Timeout: cfg.AppendTimeout,
			Observe: func(n int) { batch.Observe(float64(n)) },
		})
		// Producers close before their clients: closers run in order.
		s.closers = slices.Insert(s.closers, 0, producer.Close)
		shards[i] = redisShard{Producer: producer, client: client}
	}
	q, err := copies.New(shards, copies.Options{Copies: n, Own: own, Logger: s.log, Metrics: copies.NewMetrics(s.reg, len(shards))})
	if err != nil {
		s.Close()
		return fmt.Errorf("web: %w", err)
	}
	s.queue = q
	s.closers = slices.Insert(s.closers, 0, q.Close)
	return nil
}

// checkDurable refuses a Redis that answers and is not durable. A Redis
// that is down now is fine (health says so); one that is up and not
// durable would make every 202 a lie. The check itself can fail before
// Redis is even resolvable; judge only a Redis that answers.
func checkDurable(ctx context.Context, client *goredis.Client) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := redis.CheckDurable(cctx, client)
	if err != nil && client.Ping(cctx).Err() == nil {
		return redis.CheckDurable(cctx, client)
	}
	return nil
}

// openCatalog connects the catalogue and poll cache to Postgres, if one is
// configured, and keeps it in step in the background. Capture itself never
// waits for Postgres.
func (s *Server) openCatalog(cfg Config) error {
	if cfg.Postgres.URL == "" {
		return nil
	}
	db, err := postgres.Open(context.Background(), cfg.Postgres)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	cache := catalog.New(db, cfg.Polls, s.log)
	s.reg.MustRegister(cache.Loads)
	accts, err := accounts.New(cfg.Accounts, accounts.Options{Store: db, Keys: s.signer.Keys(), Proxies: s.proxies,
		CookieSecure: cfg.CookieSecure, Node: cfg.Node, Logger: s.log.With("part", "accounts"), Now: s.now})
	if err != nil {
		db.Close()
		return fmt.Errorf("web: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { cache.Run(ctx, db) })
	s.catalog, s.applied, s.accts = cache, db, accts
	s.closers = append(s.closers, func() {
		cancel()
		bg.Wait()
		db.Close()
	})
	return nil
}

// poll finds a poll by id among the configured and stored polls.
func (s *Server) poll(ctx context.Context, id string) (surge.Poll, bool) {
	if s.catalog != nil {
		return s.catalog.Poll(ctx, id)
	}
	p, ok := s.static[id]
	return p, ok
}

// Close stops the producer, the cache and the clients New opened. Call it
// after the HTTP server has shut down, so every in-flight request is
// answered first.
func (s *Server) Close() {
	for _, c := range s.closers {
		c()
	}
}

// secure reports whether the client reached us over TLS (directly, or at a
// trusted proxy that says so), so cookies get the Secure flag.
func (s *Server) secure(c *gin.Context) bool {
	return httpx.Secure(c.Request, s.proxies, s.cfg.CookieSecure)
}

// clientAddr is what the per-address limits count against: the client's
// address as a trusted proxy reported it (httpx.ClientIP, which believes
// X-Forwarded-For only from trusted_proxies). An IPv6 client counts as its
// /64, which one subscriber usually holds whole.
func (s *Server) clientAddr(c *gin.Context) string {
	ip := httpx.ClientIP(c.Request, s.proxies)
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if addr = addr.Unmap(); addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// allow answers 429 with Retry-After, and false, once key is past l's limit.
func (s *Server) allow(c *gin.Context, l *keyedLimiter, key, message string) bool {
	ok, wait := l.Allow(key)
	if !ok {
		httpx.Error(c, s.log, surge.RateLimited(message, wait))
	}
	return ok
}

func (s *Server) routes() (*gin.Engine, error) {
	r, err := httpx.NewEngine(httpx.EngineOptions{Service: "web", Node: s.cfg.Node, Log: s.log, Registry: s.reg,
		TrustedProxies: s.cfg.TrustedProxies, Health: s.health})
	if err != nil {
		return nil, err
	}
	r.POST("/vote", s.postVote)
	r.POST("/orders", s.postOrder)
	r.GET("/api/items", s.getItems)
	r.GET("/api/items/:id", s.getItem)
	r.GET("/shop", s.getShop)
	r.GET("/cart", s.getCart)
	r.GET("/", s.getVotePage)
	r.GET("/polls/:poll", s.getVotePage)
	// Accounts, off the hot path (see package accounts).
	r.POST("/accounts", s.limitSignUps, s.account(Accounts.PostAccount))
	r.POST("/login", s.account(Accounts.PostLogin))
	r.POST("/logout", s.account(Accounts.PostLogout))
	r.GET("/accounts/me/orders", s.account(Accounts.GetMyOrders))
	r.GET("/signup", s.account(Accounts.GetSignUpPage))
	r.GET("/login", s.account(Accounts.GetLoginPage))
	r.GET("/my-orders", s.account(Accounts.GetMyOrdersPage))
	return r, nil
}

// account is an accounts handler, or 503 on a frontend without accounts.
func (s *Server) account(h func(Accounts, *gin.Context)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.accts == nil {
			httpx.Error(c, s.log, errNoAccounts)
			return
		}
		h(s.accts, c)
	}
}

// limitSignUps answers 429 past the sign-ups one client address may make:
// each costs a bcrypt hash and a row.
func (s *Server) limitSignUps(c *gin.Context) {
	s.allow(c, s.signups, s.clientAddr(c), "too many sign-ups from this address; try again later") // a refusal aborts
}

var errNoAccounts = surge.Errorf(surge.EUNAVAILABLE, "accounts not configured")

// signedAccount is the account whose signed session cookie r carries, 0
// for none (see Accounts.Signed).
func (s *Server) signedAccount(r *http.Request) int64 {
	if s.accts == nil {
		return 0
	}
	id, _ := s.accts.Signed(r)
	return id
}

// Receipt is the 202 answer to a vote.
type Receipt struct {
	Receipt string `json:"receipt"`
	Poll    string `json:"poll"`
	Choice  string `json:"choice"`
	Node    string `json:"node"`
}

func (s *Server) postVote(c *gin.Context) {
	req, err := decodeVote(c.Request, s.cfg.MaxBody)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if req.Poll == "" {
		req.Poll = surge.DefaultPollID
	}
	poll, ok := s.poll(c.Request.Context(), req.Poll)
	if !ok {
		httpx.Error(c, s.log, surge.Errorf(surge.EINVALID, "unknown poll %q", req.Poll))
		return
	}
	req.Poll = poll.ID
	if !poll.HasOption(req.Choice) {
		httpx.Error(c, s.log, surge.Errorf(surge.EINVALID, "unknown choice %q for poll %q", req.Choice, poll.ID))
		return
	}
	// The capture time decides: the worker counts this vote, however late,
	// only if it was cast inside the poll's window.
	now := s.now()
	if err := poll.Accepts(now); err != nil {
		httpx.Error(c, s.log, err)
		return
	}

	if poll.AccountsOnly {
		s.postAccountVote(c, req, poll, now)
		return
	}
	id, known := voter.NewIdentity(), false
	if ck, err := c.Request.Cookie(voter.CookieName); err == nil {
		// A forged or damaged cookie is a new voter, never someone else.
		if v, err := s.signer.Verify(ck.Value); err == nil {
			id, known = v, true
		}
	}
	if known && !s.allow(c, s.voters, id.ID, "too many votes from this voter; slow down") {
		return
	}
	// A new voter is one more ballot: how many one address may create is
	// limited, or dropping the cookie would make stuffing free.
	if !known && !s.allow(c, s.newbies, s.clientAddr(c), "too many new voters from this address; try again later") {
		return
	}
	id.Version = surge.NextVersion(now, id.Version)
	vote, ok := s.queueVote(c, poll, req.Choice, id.ID, id.Version, now)
	if !ok {
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: voter.CookieName, Value: s.signer.Sign(id), Path: "/",
		MaxAge: 400 * 24 * 3600, HttpOnly: true, Secure: s.secure(c), SameSite: http.SameSiteLaxMode,
	})
	s.answerVote(c, req, poll, vote)
}

// postAccountVote takes a vote in an accounts-only poll: the voter is the
// session's account, checked in the accounts store (401 without a live
// session, 503 while the store is down), so an account has one vote
// whatever cookies the browser holds. The latest vote wins: its version is
// the capture time (surge.NextVersion), as for a new cookie voter.
func (s *Server) postAccountVote(c *gin.Context, req voteRequest, poll surge.Poll, now time.Time) {
	if s.accts == nil {
		httpx.Error(c, s.log, errNoAccounts)
		return
	}
	account, err := s.accts.Session(c.Request.Context(), c.Request)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	voterID := surge.AccountVoter(account)
	if !s.allow(c, s.voters, voterID, "too many votes from this voter; slow down") {
		return
	}
	vote, ok := s.queueVote(c, poll, req.Choice, voterID, surge.NextVersion(now, 0), now)
	if ok {
		s.answerVote(c, req, poll, vote)
	}
}

// queueVote appends a vote to the shard's stream: false, answered 503, if
// the queue cannot take it.
func (s *Server) queueVote(c *gin.Context, poll surge.Poll, choice, voterID string, version int64, now time.Time) (surge.Vote, bool) {
	vote := surge.Vote{
		ID: ulid.Make().String(), Poll: poll.ID, Choice: choice,
		Voter: voterID, Version: version, Node: s.cfg.Node, At: now.UTC(),
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.AppendTimeout)
	defer cancel()
	if _, err := s.queue.Append(ctx, surge.EncodeVote(vote)); err != nil {
		s.log.Warn("queue append failed", "err", err)
		httpx.Error(c, s.log, surge.Unavailable("queue", err))
		return surge.Vote{}, false
	}
	s.votes.WithLabelValues(poll.ID).Inc()
	return vote, true
}

// answerVote answers a queued vote: the receipt, or the vote page for a
// browser's form.
func (s *Server) answerVote(c *gin.Context, req voteRequest, poll surge.Poll, vote surge.Vote) {
	// For display only: which option the page marks as this browser's vote.
	http.SetCookie(c.Writer, &http.Cookie{
		Name: choiceCookie(poll.ID), Value: vote.Choice, Path: "/",
		MaxAge: 400 * 24 * 3600, HttpOnly: true, Secure: s.secure(c), SameSite: http.SameSiteLaxMode,
	})
	if req.form && httpx.WantsHTML(c.Request) {
		c.Status(http.StatusAccepted)
		s.renderVotePage(c, poll, vote.Choice, vote.Choice)
		return
	}
	c.JSON(http.StatusAccepted, Receipt{Receipt: vote.ID, Poll: poll.ID, Choice: vote.Choice, Node: s.cfg.Node})
}

func (s *Server) getVotePage(c *gin.Context) {
	id := c.Param("poll")
	if id == "" {
		id = surge.DefaultPollID
	}
	poll, ok := s.poll(c.Request.Context(), id)
	if !ok {
		httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown poll %q", id))
		return
	}
	current := ""
	if ck, err := c.Request.Cookie(choiceCookie(poll.ID)); err == nil && poll.HasOption(ck.Value) {
		current = ck.Value
	}
	c.Status(http.StatusOK)
	s.renderVotePage(c, poll, "", current)
}

// choiceCookie names the display-only cookie holding a browser's choice.
func choiceCookie(poll string) string { return "surge_choice_" + poll }

func (s *Server) renderVotePage(c *gin.Context, poll surge.Poll, voted, current string) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	err := ui.Render(c.Writer, "vote.html", ui.Page{Title: poll.Title, Node: s.cfg.Node, Data: map[string]any{
		"Poll": poll, "Voted": voted, "VotedNode": s.cfg.Node, "Current": current, "State": poll.State(s.now()),
		"SignedIn": s.signedAccount(c.Request) != 0,
	}})
	if err != nil {
		s.log.Error("render vote page", "err", err)
	}
}

// health is unhealthy when too few shards answer to keep the copies, so
// the proxy stops sending votes here (degraded, naming them, when some are
// down and enough are up), and while a frontend that has just started has
// not yet tried to load the stored polls, whose votes it would refuse.
func (s *Server) health(ctx context.Context) error {
	if s.catalog != nil && !s.catalog.Ready() {
		return httpx.Down("polls", errors.New("stored polls not loaded yet"))
	}
	err := s.queue.Ping(ctx)
	if _, ok := errors.AsType[*httpx.Unhealthy](err); ok {
		return err // the queue named what is down
	}
	return httpx.Down("redis", err)
}
