// Package accounts is the public frontend's accounts: sign-up, login and
// logout, the signed session cookie, and an account's orders. It is kept
// off the hot path: an order names its buyer from the cookie's signature
// alone, so orders keep flowing while the accounts store is down; only the
// account pages and accounts-only polls need the store, and answer 503
// without it.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/lockout"
	"github.com/surge-vote/surge/internal/surge"
)

// Store keeps accounts (surge.Account) and sessions (Postgres, *postgres.DB). A store that
// is down answers errors coded surge.EUNAVAILABLE.
type Store interface {
	// CreateAccount stores a, with its id and creation time filled in; an
	// email already registered (in any case) is ECONFLICT.
	CreateAccount(ctx context.Context, a surge.Account, hash []byte) (surge.Account, error)
	// AccountByEmail finds an account by email, in any case; ENOTFOUND if
	// there is none.
	AccountByEmail(ctx context.Context, email string) (surge.Account, []byte, error)
	CreateSession(ctx context.Context, idHash []byte, account int64, expires time.Time) error
	// SessionAccount is the account of a live session: ENOTFOUND if it was
	// revoked, never existed or expired by now.
	SessionAccount(ctx context.Context, idHash []byte, now time.Time) (int64, error)
	DeleteSession(ctx context.Context, idHash []byte) error
	// AccountOrders lists an account's applied orders, newest first: at
	// most limit, older than the order before ("" for the newest).
	AccountOrders(ctx context.Context, account int64, before string, limit int) ([]surge.AccountOrder, error)
}

// Config is the accounts' configuration (under "accounts").
type Config struct {
	SessionLifetime time.Duration `mapstructure:"session_lifetime"`   // how long a login lasts
	MaxFailures     int           `mapstructure:"login_max_failures"` // failed logins per client per window before a lockout
	Lockout         time.Duration `mapstructure:"login_lockout"`
	PasswordCost    int           `mapstructure:"password_cost"`    // bcrypt cost
	HashConcurrency int           `mapstructure:"hash_concurrency"` // bcrypt runs at once per frontend; the rest wait
	MaxBody         int64         `mapstructure:"max_body"`
	StoreTimeout    time.Duration `mapstructure:"store_timeout"` // one store call, so a hung store answers 503 soon
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		SessionLifetime: 7 * 24 * time.Hour,
		MaxFailures:     5,
		Lockout:         time.Minute,
		PasswordCost:    10,
		HashConcurrency: 2,
		MaxBody:         4 << 10,
		StoreTimeout:    2 * time.Second,
	}
}

// Options are a Service's collaborators that are not configuration.
type Options struct {
	Store Store
	// Keys sign session cookies: the frontend's cookie keys (keys[0] signs,
	// every key verifies, so they rotate as the voter cookie's do).
	Keys    [][]byte
	Proxies httpx.Proxies // believed for X-Forwarded-For/-Proto
	// CookieSecure sets the Secure flag on every session cookie; without
	// it the flag is set when the client came over TLS.
	CookieSecure bool
	Node         string // shown on pages
	Logger       *slog.Logger
	Now          func() time.Time
}

// Service is the accounts side of the public frontend.
type Service struct {
	cfg     Config
	opt     Options
	log     *slog.Logger
	store   Store
	now     func() time.Time
	cookies *sessionSigner
	hasher  *hasher
	lockout *lockout.Lockout
}

// New returns a Service over opt.Store.
func New(cfg Config, opt Options) (*Service, error) {
	if opt.Store == nil {
		return nil, errors.New("accounts: no store")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if cfg.SessionLifetime <= 0 {
		return nil, errors.New("accounts: session_lifetime must be positive")
	}
	signer, err := newSessionSigner(opt.Keys)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	h, err := newHasher(cfg.PasswordCost, cfg.HashConcurrency)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	return &Service{cfg: cfg, opt: opt, log: opt.Logger, store: opt.Store, now: opt.Now, cookies: signer, hasher: h,
		lockout: lockout.New(cfg.MaxFailures, cfg.Lockout, opt.Now)}, nil
}

// storeCtx bounds one store call.
func (s *Service) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.cfg.StoreTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.StoreTimeout)
}

// unavailable makes any store failure but the expected codes a 503: the
// store being down is never a 500, and never mistaken for bad credentials.
func unavailable(err error, keep ...string) error {
	code := surge.ErrorCode(err)
	for _, k := range keep {
		if code == k {
			return err
		}
	}
	if code == surge.EUNAVAILABLE {
		return err
	}
	return surge.Unavailable("accounts", err)
}
