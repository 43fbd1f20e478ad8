package accounts

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/surge-vote/surge/internal/signed"
)

// CookieName is the session cookie's name.
const CookieName = "surge_session"

// errInvalid: the cookie is absent, malformed, expired or not signed by
// any key.
var errInvalid = errors.New("invalid session cookie")

// session is what the session cookie says:
//
//	s1.<account id>.<session id, 32 random bytes, base64url>.<expiry, Unix s>.<base64url HMAC-SHA256>
//
// The signature alone is enough to name the buyer of an order; the account
// pages also check that the session is still stored (not logged out).
type session struct {
	Account int64
	ID      string // base64url; the store keeps its SHA-256 only
	Expires time.Time
}

// newSessionID returns 32 random bytes, base64url.
func newSessionID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// idHash is what the store keeps of a session id.
func idHash(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// sessionSigner signs session cookies with the first key and verifies them
// against every key, under a label of their own: a voter cookie never
// passes for a session, nor the other way round.
type sessionSigner struct{ signed *signed.Signer }

func newSessionSigner(keys [][]byte) (*sessionSigner, error) {
	s, err := signed.New("surge session", keys)
	if err != nil {
		return nil, fmt.Errorf("cookie keys: %w", err)
	}
	return &sessionSigner{signed: s}, nil
}

func (s *sessionSigner) Sign(v session) string {
	return s.signed.Sign("s1." + strconv.FormatInt(v.Account, 10) + "." + v.ID + "." + strconv.FormatInt(v.Expires.Unix(), 10))
}

// Verify parses a cookie value, checks its signature against every key,
// and refuses it once expired at now.
func (s *sessionSigner) Verify(value string, now time.Time) (session, error) {
	payload, ok := s.signed.Open(value, 200)
	if !ok {
		return session{}, errInvalid
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 4 || parts[0] != "s1" {
		return session{}, errInvalid
	}
	account, err1 := strconv.ParseInt(parts[1], 10, 64)
	expires, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || account <= 0 || len(parts[2]) != 43 {
		return session{}, errInvalid
	}
	v := session{Account: account, ID: parts[2], Expires: time.Unix(expires, 0)}
	if !now.Before(v.Expires) {
		return session{}, errInvalid
	}
	return v, nil
}
