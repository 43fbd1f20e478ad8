// Package voter issues and verifies the signed voter cookie.
//
// The cookie carries the voter's id and the version of their last vote:
//
//	v1.<voter id>.<version>.<base64url HMAC-SHA256>
//
// It is signed with the first key and verified against every key, so keys
// can be rotated by prepending a new one and dropping the old one later.
package voter

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/surge-vote/surge/internal/signed"
)

// CookieName is the name of the voter cookie.
const CookieName = "surge_voter"

// ErrInvalid means the cookie is absent, malformed or not signed by any key.
// The caller treats the request as a new voter.
var ErrInvalid = errors.New("invalid voter cookie")

// Identity is what the cookie says about a voter.
type Identity struct {
	ID      string // 32 hex characters
	Version int64  // version of the voter's last vote, 0 for a new voter
}

// Signer signs and verifies voter cookies.
type Signer struct {
	signed *signed.Signer
}

// NewSigner returns a Signer. keys[0] signs; every key verifies.
func NewSigner(keys [][]byte) (*Signer, error) {
	s, err := signed.New("", keys) // no label: the cookies signed before the label existed stay valid
	if err != nil {
		return nil, errors.New("voter signer: " + err.Error())
	}
	return &Signer{signed: s}, nil
}

// Keys returns the signing keys, first the one that signs: other signed
// cookies of the frontend (the session cookie) use the same keys.
func (s *Signer) Keys() [][]byte { return s.signed.Keys() }

// NewIdentity returns a fresh voter with a random id.
func NewIdentity() Identity {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return Identity{ID: hex.EncodeToString(b[:])}
}

// Sign returns the cookie value for id.
func (s *Signer) Sign(id Identity) string {
	return s.signed.Sign("v1." + id.ID + "." + strconv.FormatInt(id.Version, 10))
}

// Verify parses a cookie value and checks its signature against every key.
func (s *Signer) Verify(value string) (Identity, error) {
	payload, ok := s.signed.Open(value, 200)
	if !ok {
		return Identity{}, ErrInvalid
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || parts[0] != "v1" || !validID(parts[1]) {
		return Identity{}, ErrInvalid
	}
	version, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || version < 0 || strconv.FormatInt(version, 10) != parts[2] {
		return Identity{}, ErrInvalid
	}
	return Identity{ID: parts[1], Version: version}, nil
}

func validID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
