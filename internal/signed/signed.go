// Package signed signs short values with HMAC-SHA256 and verifies them
// against a list of keys: the first signs and every key verifies, so keys
// rotate by prepending a new one and dropping the old one later. The
// frontend's cookies (the voter's, the session's) are such values.
package signed

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// MinKey is the shortest key accepted, in bytes.
const MinKey = 16

// Signer signs payloads as "<payload>.<base64url MAC>".
type Signer struct {
	label string
	keys  [][]byte
	// macs holds, per key, HMAC states to reuse: hmac.New hashes the key
	// into two fresh SHA-256 states each time, on every request.
	macs []sync.Pool
}

// New returns a Signer over keys (keys[0] signs). Values signed under one
// label never verify under another, so cookies signed with the same keys
// cannot stand in for each other.
func New(label string, keys [][]byte) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	for i, k := range keys {
		if len(k) < MinKey {
			return nil, errors.New("key " + strconv.Itoa(i) + " is shorter than 16 bytes")
		}
	}
	s := &Signer{label: label, keys: keys, macs: make([]sync.Pool, len(keys))}
	for i, k := range keys {
		s.macs[i].New = func() any { return hmac.New(sha256.New, k) }
	}
	return s, nil
}

// Keys returns the keys, first the one that signs.
func (s *Signer) Keys() [][]byte { return s.keys }

// Sign returns payload with its MAC under the first key.
func (s *Signer) Sign(payload string) string {
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(0, payload))
}

// Open returns the payload of a value Sign wrote under any key: false for
// anything else, and for a value longer than max bytes.
func (s *Signer) Open(value string, max int) (string, bool) {
	if len(value) > max {
		return "", false
	}
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return "", false
	}
	payload, sig64 := value[:i], value[i+1:]
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	// Only the exact encoding Sign writes: the decoder would also skip
	// newlines and ignore stray trailing bits.
	if err != nil || base64.RawURLEncoding.EncodeToString(sig) != sig64 {
		return "", false
	}
	for i := range s.keys {
		if hmac.Equal(sig, s.mac(i, payload)) {
			return payload, true
		}
	}
	return "", false
}

// mac is payload's MAC under key i.
func (s *Signer) mac(i int, payload string) []byte {
	h := s.macs[i].Get().(hash.Hash)
	defer s.macs[i].Put(h)
	h.Reset()
	if s.label != "" {
		h.Write([]byte(s.label + "\x00"))
	}
	h.Write([]byte(payload))
	return h.Sum(nil)
}
