package accounts

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/surge-vote/surge/internal/surge"
)

// Limits of a sign-up.
const (
	MinPassword   = 10  // characters
	MaxPassword   = 72  // bytes: bcrypt reads no further, so a longer one is refused, never cut
	MaxNameLength = 100 // characters
	MaxEmail      = 254 // bytes (RFC 5321's path limit)
)

// SignUp is a sign-up request.
type SignUp struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Validate checks every field, naming each one at fault, and returns the
// name and email as they are stored (trimmed).
func (r SignUp) Validate() (name, email string, err error) {
	fields := map[string]string{}
	name = strings.TrimSpace(r.Name)
	switch n := utf8.RuneCountInString(name); {
	case n == 0:
		fields["name"] = "is required"
	case n > MaxNameLength:
		fields["name"] = fmt.Sprintf("must be at most %d characters", MaxNameLength)
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		fields["name"] = "must contain only printable characters"
	}
	email, ok := ValidEmail(r.Email)
	if !ok {
		fields["email"] = "must be an email address such as ada@example.com"
	}
	switch {
	case utf8.RuneCountInString(r.Password) < MinPassword:
		fields["password"] = fmt.Sprintf("must be at least %d characters", MinPassword)
	case len(r.Password) > MaxPassword:
		fields["password"] = fmt.Sprintf("must be at most %d bytes (bcrypt reads no further)", MaxPassword)
	}
	if len(fields) > 0 {
		return "", "", &surge.Error{Code: surge.EINVALID, Message: "invalid sign-up", Fields: fields}
	}
	return name, email, nil
}

// ValidEmail returns the trimmed address if it is one bare address
// (net/mail, without a display name or angle brackets), else false.
func ValidEmail(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxEmail {
		return "", false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "", false
	}
	return s, true
}

// hasher hashes and checks passwords with bcrypt, at most n at once: each
// takes tens of milliseconds of one core (a few KiB of memory), so a flood
// of logins or sign-ups queues here instead of taking every core from the
// votes.
type hasher struct {
	cost  int
	slots chan struct{}
	dummy []byte // a hash of nothing anyone knows, checked for unknown emails
}

func newHasher(cost, n int) (*hasher, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("password_cost must be from %d to %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	if n < 1 {
		return nil, fmt.Errorf("hash_concurrency must be at least 1")
	}
	h := &hasher{cost: cost, slots: make(chan struct{}, n)}
	dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// acquire waits for a slot, or gives up with 503 when the client does.
func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return surge.Unavailable("password hashing", ctx.Err())
	}
}

func (h *hasher) release() { <-h.slots }

// Hash returns the bcrypt hash of a validated password.
func (h *hasher) Hash(ctx context.Context, password string) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	defer h.release()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), h.cost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}

// Check reports whether password matches hash. A nil hash (no such
// account) is checked against the dummy, so an unknown email costs the
// same time as a wrong password.
func (h *hasher) Check(ctx context.Context, hash []byte, password string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	known := hash != nil
	if !known {
		hash = h.dummy
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && known, nil
}
