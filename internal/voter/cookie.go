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
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
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
	keys [][]byte
}

// NewSigner returns a Signer. keys[0] signs; every key verifies.
func NewSigner(keys [][]byte) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("voter signer: no keys")
	}
	for i, k := range keys {
		if len(k) < 16 {
			return nil, errors.New("voter signer: key " + strconv.Itoa(i) + " is shorter than 16 bytes")
		}
	}
	return &Signer{keys: keys}, nil
}

// NewIdentity returns a fresh voter with a random id.
func NewIdentity() Identity {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return Identity{ID: hex.EncodeToString(b[:])}
}

// Sign returns the cookie value for id.
func (s *Signer) Sign(id Identity) string {
	payload := "v1." + id.ID + "." + strconv.FormatInt(id.Version, 10)
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac(s.keys[0], payload))
}

// Verify parses a cookie value and checks its signature against every key.
func (s *Signer) Verify(value string) (Identity, error) {
	if len(value) > 200 {
		return Identity{}, ErrInvalid
	}
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return Identity{}, ErrInvalid
	}
	payload, sig64 := value[:i], value[i+1:]
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	// Only the exact encoding Sign writes: the decoder would also skip
	// newlines and ignore stray trailing bits.
	if err != nil || base64.RawURLEncoding.EncodeToString(sig) != sig64 {
		return Identity{}, ErrInvalid
	}
	ok := false
	for _, k := range s.keys {
		if hmac.Equal(sig, mac(k, payload)) {
			ok = true
			break
		}
	}
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

func mac(key []byte, payload string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(payload))
	return h.Sum(nil)
}

func validID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
