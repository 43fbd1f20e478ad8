// Package admin is the admin service behind /admin: it writes the item
// catalogue and the polls straight to Postgres, behind HTTP basic
// authentication, and lists what was counted for audits.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/lockout"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/telemetry"
	"github.com/surge-vote/surge/internal/ui"
)

// Config is the admin service's configuration.
type Config struct {
	Postgres      postgres.Config `mapstructure:"postgres"`
	AdminUser     string          `mapstructure:"admin_user"`
	AdminPassword string          `mapstructure:"admin_password"`     // secret
	AdminMaxFails int             `mapstructure:"admin_max_failures"` // failed logins per client per window before a lockout
	AdminLockout  time.Duration   `mapstructure:"admin_lockout"`
	// TrustedProxies may set X-Forwarded-For: HAProxy's addresses, no
	// more (a client there could write it too). The lockout counts the
	// address they report.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	Listen         string   `mapstructure:"listen"`
	DebugListen    string   `mapstructure:"debug_listen"` // Go's profiles, loopback only; "": off (package profiling)
	Node           string   `mapstructure:"node"`         // shown on pages; defaults to the hostname
	MaxBody        int64    `mapstructure:"max_body"`
	LogLevel       string   `mapstructure:"log_level"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Postgres:       postgres.Config{MaxConns: 4},
		AdminUser:      "admin",
		AdminMaxFails:  5,
		AdminLockout:   time.Minute,
		TrustedProxies: httpx.PrivateProxies(),
		Listen:         "127.0.0.1:8081",
		MaxBody:        16 << 10, // an item description is up to 2,000 characters
		LogLevel:       "info",
	}
}

// Store is what admin reads and writes: Postgres (*postgres.DB).
type Store interface {
	UpsertItem(ctx context.Context, in surge.ItemInput) (item surge.Item, created bool, err error)
	AllItems(ctx context.Context) ([]surge.Item, error) // retired ones included
	RetireItem(ctx context.Context, id int64) (surge.Item, error)
	CreatePoll(ctx context.Context, p surge.Poll) error
	Polls(ctx context.Context) ([]surge.Poll, error)
	ClosePoll(ctx context.Context, id string, at time.Time) (surge.Poll, error)
	CountedVotes(ctx context.Context, poll, after string, limit int) ([]postgres.VoteRecord, error)
	AppliedOrders(ctx context.Context) ([]postgres.OrderRecord, error)
	Ping(ctx context.Context) error
}

// Options are a Server's collaborators that are not configuration.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // the lockout's and the polls' clock; tests move it
	// Store, if set, is used instead of opening cfg.Postgres (tests give
	// a fake); the Server does not close it.
	Store Store
}

// Server is the admin service.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   Store
	close   func() // closes what New opened
	lockout *lockout.Lockout
	now     func() time.Time
	proxies httpx.Proxies // cfg.TrustedProxies, parsed
	handler http.Handler
}

// New checks the credentials are configured, opens and migrates Postgres
// (unless opt.Store is given) and builds the routes.
func New(ctx context.Context, cfg Config, opt Options) (*Server, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if cfg.AdminUser == "" || len(cfg.AdminPassword) < 8 {
		return nil, errors.New("web: admin mode needs admin_user and an admin_password of at least 8 characters (SURGE_ADMIN_PASSWORD or SURGE_ADMIN_PASSWORD_FILE)")
	}
	proxies, err := httpx.ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s := &Server{cfg: cfg, log: opt.Logger, store: opt.Store, close: func() {}, proxies: proxies,
		lockout: lockout.New(cfg.AdminMaxFails, cfg.AdminLockout, opt.Now), now: opt.Now}
	if s.store == nil {
		db, err := openStore(ctx, cfg.Postgres)
		if err != nil {
			return nil, err
		}
		s.store, s.close = db, db.Close
	}
	r, err := httpx.NewEngine(httpx.EngineOptions{Service: "admin", Node: cfg.Node, Log: s.log, Registry: telemetry.NewRegistry(),
		TrustedProxies: cfg.TrustedProxies, Health: func(ctx context.Context) error { return httpx.Down("postgres", s.store.Ping(ctx)) }})
	if err != nil {
		s.Close()
		return nil, err
	}
	admin := r.Group("/admin", s.requireAdmin)
	admin.GET("", s.getAdminPage)
	admin.GET("/api/items", s.getAdminItems)
	admin.POST("/api/items", s.postItem)
	admin.POST("/api/items/:id/retire", s.postRetireItem)
	admin.POST("/api/polls", s.postPoll)
	admin.GET("/api/polls", s.getPolls)
	admin.POST("/api/polls/:poll/close", s.postClosePoll)
	admin.GET("/api/audit/votes", s.getAuditVotes)
	admin.GET("/api/polls/:poll/audit", s.getAuditVotes)
	admin.GET("/api/audit/orders", s.getAuditOrders)
	// Form posts from another origin are refused (Sec-Fetch-Site / Origin).
	s.handler = httpx.CrossOriginProtection(r)
	return s, nil
}

// openStore opens the database, waits for it and migrates it: admin is the
// service that creates the schema's rows, so it starts on a current one.
func openStore(ctx context.Context, cfg postgres.Config) (*postgres.DB, error) {
	if cfg.URL == "" {
		return nil, errors.New("web: admin mode needs postgres.url")
	}
	db, err := postgres.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if err := db.WaitReady(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("web: %w", err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("web: %w", err)
	}
	return db, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close closes the database New opened. Call it after the HTTP server has
// shut down.
func (s *Server) Close() { s.close() }

// requireAdmin checks HTTP basic credentials in constant time: the digests
// of both fields are always compared, whatever is wrong. A client that fails
// too often is locked out for a while, even with the right password. The
// client is the connection's peer, or the address HAProxy saw (never one
// the client wrote). Credentials are never logged.
func (s *Server) requireAdmin(c *gin.Context) {
	client := httpx.ClientIP(c.Request, s.proxies)
	if wait := s.lockout.Locked(client); wait > 0 {
		s.log.Warn("admin login refused: locked out", "client", client, "for", wait)
		httpx.Error(c, s.log, surge.RateLimited("too many failed logins; try again later", wait))
		return
	}
	user, pass, _ := c.Request.BasicAuth()
	wantUser, wantPass := sha256.Sum256([]byte(s.cfg.AdminUser)), sha256.Sum256([]byte(s.cfg.AdminPassword))
	gotUser, gotPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	okUser := subtle.ConstantTimeCompare(wantUser[:], gotUser[:])
	okPass := subtle.ConstantTimeCompare(wantPass[:], gotPass[:])
	if okUser&okPass != 1 {
		if user != "" || pass != "" { // a browser's first, credential-less request is no failure
			s.lockout.Fail(client)
			s.log.Warn("admin login failed", "client", client)
		}
		c.Header("WWW-Authenticate", `Basic realm="surge admin", charset="UTF-8"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, httpx.ErrorBody{Error: "authentication required"})
		return
	}
	c.Next()
}

type itemRequest struct {
	Name        string          `json:"name"`
	Quantity    json.RawMessage `json:"quantity"`
	Price       json.RawMessage `json:"price"` // "12.50" or 12.5
	Topic       *string         `json:"topic"`
	Description *string         `json:"description"`
}

func (s *Server) postItem(c *gin.Context) {
	var req itemRequest
	form, err := httpx.DecodeBody(c.Request, s.cfg.MaxBody, &req)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	var price *string
	quantity := httpx.NumberLiteral(req.Quantity)
	if form != nil {
		req.Name, quantity = form.Get("name"), json.Number(form.Get("quantity"))
		p := form.Get("price")
		price = &p
		// An empty field on the form keeps what the item has.
		if t := form.Get("topic"); t != "" {
			req.Topic = &t
		}
		if d := form.Get("description"); d != "" {
			req.Description = &d
		}
	} else if len(req.Price) > 0 && string(req.Price) != "null" {
		p := string(req.Price) // a number literal, as written
		if req.Price[0] == '"' {
			if err := json.Unmarshal(req.Price, &p); err != nil {
				httpx.Error(c, s.log, surge.Errorf(surge.EINVALID, `"price" must be a string or a number`))
				return
			}
		}
		price = &p
	}
	in, err := surge.ParseItemInput(req.Name, quantity, price)
	err = withDetails(&in, req.Topic, req.Description, err)
	if err == nil {
		var item surge.Item
		var created bool
		item, created, err = s.store.UpsertItem(c.Request.Context(), in)
		if err == nil {
			if form != nil && httpx.WantsHTML(c.Request) {
				c.Redirect(http.StatusSeeOther, "/admin")
				return
			}
			status := http.StatusOK
			if created {
				status = http.StatusCreated
			}
			c.JSON(status, item)
			return
		}
	}
	if form != nil && httpx.WantsHTML(c.Request) && surge.ErrorCode(err) == surge.EINVALID {
		s.renderAdminPage(c, http.StatusBadRequest, err, form.Get("name"), form.Get("quantity"), form.Get("price"))
		return
	}
	httpx.Error(c, s.log, err)
}

type pollRequest struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	Options []string `json:"options"`
	// RFC 3339 times, e.g. 2027-02-07T23:00:00Z; empty is no bound.
	OpensAt  string `json:"opens_at"`
	ClosesAt string `json:"closes_at"`
	// AccountsOnly: only logged-in accounts vote, one vote each.
	AccountsOnly bool `json:"accounts_only"`
}

// PollView is a poll as admin lists it: with its state now.
type PollView struct {
	surge.Poll
	State string `json:"state"`
}

func (s *Server) postPoll(c *gin.Context) {
	var req pollRequest
	form, err := httpx.DecodeBody(c.Request, s.cfg.MaxBody, &req)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if form != nil {
		req = pollRequest{ID: form.Get("id"), Title: form.Get("title"), OpensAt: form.Get("opens_at"), ClosesAt: form.Get("closes_at"),
			AccountsOnly: form.Get("accounts_only") != ""}
		for _, o := range strings.FieldsFunc(form.Get("options"), func(r rune) bool { return r == ',' || r == '\n' }) {
			if o = strings.TrimSpace(o); o != "" {
				req.Options = append(req.Options, o)
			}
		}
	}
	p := surge.Poll{ID: req.ID, Title: strings.TrimSpace(req.Title), Options: req.Options, AccountsOnly: req.AccountsOnly}
	if p.Title == "" {
		p.Title = p.ID
	}
	if p.OpensAt, p.ClosesAt, err = parseWindow(req.OpensAt, req.ClosesAt); err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if err := s.store.CreatePoll(c.Request.Context(), p); err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if form != nil && httpx.WantsHTML(c.Request) {
		c.Redirect(http.StatusSeeOther, "/admin")
		return
	}
	c.JSON(http.StatusCreated, s.view(p))
}

// parseWindow reads a poll's opening and closing times (RFC 3339; empty is
// no bound), naming the field at fault.
func parseWindow(opens, closes string) (opensAt, closesAt *time.Time, err error) {
	fields := map[string]string{}
	parse := func(field, v string) *time.Time {
		if v = strings.TrimSpace(v); v == "" {
			return nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			fields[field] = "must be a time such as 2027-02-07T23:00:00Z (RFC 3339)"
			return nil
		}
		t = t.UTC()
		return &t
	}
	opensAt, closesAt = parse("opens_at", opens), parse("closes_at", closes)
	if len(fields) > 0 {
		return nil, nil, &surge.Error{Code: surge.EINVALID, Message: "invalid poll times", Fields: fields}
	}
	return opensAt, closesAt, nil
}

// getPolls lists every stored poll with its window and state.
func (s *Server) getPolls(c *gin.Context) {
	polls, err := s.store.Polls(c.Request.Context())
	httpx.List(c, s.log, s.views(polls), err)
}

// view is a poll as admin shows it: in UTC, with its state now.
func (s *Server) view(p surge.Poll) PollView { return PollView{p.UTC(), p.State(s.now())} }

func (s *Server) views(polls []surge.Poll) []PollView {
	views := make([]PollView, 0, len(polls))
	for _, p := range polls {
		views = append(views, s.view(p))
	}
	return views
}

// postClosePoll closes a poll now: votes captured from now on are refused;
// votes captured before still count when they are drained.
func (s *Server) postClosePoll(c *gin.Context) {
	id := c.Param("poll")
	if !surge.ValidSlug(id) {
		httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown poll %q", id))
		return
	}
	p, err := s.store.ClosePoll(c.Request.Context(), id, s.now().UTC())
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	answer(c, s.view(p))
}

// answer ends an admin action: a browser (a form on the admin page) goes
// back to the page, an API client gets v.
func answer(c *gin.Context, v any) {
	if httpx.WantsHTML(c.Request) {
		c.Redirect(http.StatusSeeOther, "/admin")
		return
	}
	c.JSON(http.StatusOK, v)
}

// withDetails parses the topic and description into in, adding their
// problems to err's fields (err is ParseItemInput's).
func withDetails(in *surge.ItemInput, topic, description *string, err error) error {
	fields := map[string]string{}
	var se *surge.Error
	if errors.As(err, &se) && se.Fields != nil {
		fields = se.Fields
	} else if err != nil {
		return err
	}
	surge.ParseItemDetails(in, topic, description, fields)
	if len(fields) > 0 {
		return &surge.Error{Code: surge.EINVALID, Message: "invalid item", Fields: fields}
	}
	return nil
}

// postRetireItem takes an item off sale for good: it leaves the catalogue,
// and an order line for it is rejected as unknown_item.
func (s *Server) postRetireItem(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown item %q", c.Param("id")))
		return
	}
	item, err := s.store.RetireItem(c.Request.Context(), id)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	answer(c, item)
}

func (s *Server) getAdminItems(c *gin.Context) {
	items, err := s.store.AllItems(c.Request.Context())
	httpx.List(c, s.log, items, err)
}

func (s *Server) getAdminPage(c *gin.Context) { s.renderAdminPage(c, http.StatusOK, nil, "", "", "") }

func (s *Server) renderAdminPage(c *gin.Context, status int, formErr error, name, quantity, price string) {
	items, err := s.store.AllItems(c.Request.Context())
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	polls, err := s.store.Polls(c.Request.Context())
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	var fields map[string]string
	var se *surge.Error
	if errors.As(formErr, &se) {
		fields = se.Fields
		if fields == nil {
			fields = map[string]string{"form": se.Message}
		}
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := ui.Render(c.Writer, "admin.html", ui.Page{Title: "Admin", Node: s.cfg.Node, Data: map[string]any{
		"Items": items, "Polls": s.views(polls), "Errors": fields, "Name": name, "Quantity": quantity, "Price": price,
	}}); err != nil {
		s.log.Error("render admin page", "err", err)
	}
}

// getAuditOrders lists every applied order.
func (s *Server) getAuditOrders(c *gin.Context) {
	orders, err := s.store.AppliedOrders(c.Request.Context())
	httpx.List(c, s.log, orders, err)
}
