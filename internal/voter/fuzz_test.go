package voter

import (
	"errors"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/signed"
)

// The keys of the fuzz targets: the verifier signs with current and still
// accepts old; forger's key is nobody's.
var (
	currentKey = []byte("current-key-0123456789abcdef")
	oldKey     = []byte("old-key-0123456789abcdef")
	forgerKey  = []byte("forger-key-0123456789abcdef")
)

func fuzzSigners(f *testing.F) (verifier, current, old, forger *Signer) {
	var err error
	signer := func(keys ...[]byte) *Signer {
		var s *Signer
		if s, err = NewSigner(keys); err != nil {
			f.Fatal(err)
		}
		return s
	}
	return signer(currentKey, oldKey), signer(currentKey), signer(oldKey), signer(forgerKey)
}

// macWith signs an arbitrary payload the way Sign does: what only a holder
// of key could produce.
func macWith(key []byte, payload string) string {
	s, err := signed.New("", [][]byte{key})
	if err != nil {
		panic(err)
	}
	return s.Sign(payload)
}

func addCookieSeeds(f *testing.F, current, old, forger *Signer) {
	ids := []Identity{
		{ID: "0123456789abcdef0123456789abcdef", Version: 1_700_000_000_000_000},
		{ID: "ffffffffffffffffffffffffffffffff", Version: 0},
		{ID: "00000000000000000000000000000000", Version: 1<<63 - 1},
	}
	for _, id := range ids {
		for _, s := range []*Signer{current, old, forger} {
			f.Add(s.Sign(id))
		}
	}
	good := current.Sign(ids[0])
	for _, v := range []string{
		"", ".", "v1", "v1...", "v1.x.1.***", strings.Repeat("a", 201), good + "=", good[:len(good)-1],
		strings.ToUpper(good), strings.Replace(good, "v1.", "v2.", 1), strings.Replace(good, ".17", ".+17", 1),
		strings.Replace(good, ".17", ".017", 1), "v1.0123456789abcdef0123456789abcdef.5",
		"v1.0123456789ABCDEF0123456789ABCDEF.5", "v1.0123456789abcdef0123456789abcdef.-1", "v1.0123456789abcdef0123456789abcdef.-0",
		"v1.0123456789abcdef0123456789abcdef.9223372036854775808", "v1.0123456789abcdef0123456789abcdef.1.2",
	} {
		f.Add(v)
	}
}

// FuzzVerify: Verify never panics, refuses with ErrInvalid and a zero
// identity, and accepts only what Sign produced with one of its keys:
// signing the identity it returns again gives back exactly the input. A
// value signed with another key is never accepted.
func FuzzVerify(f *testing.F) {
	verifier, current, old, forger := fuzzSigners(f)
	addCookieSeeds(f, current, old, forger)
	f.Fuzz(func(t *testing.T, value string) {
		id, err := verifier.Verify(value)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || id != (Identity{}) {
				t.Fatalf("Verify(%q) = %+v, %v; want a zero identity and ErrInvalid", value, id, err)
			}
		} else {
			if !validID(id.ID) || id.Version < 0 {
				t.Fatalf("Verify(%q) accepted a malformed identity %+v", value, id)
			}
			if value != current.Sign(id) && value != old.Sign(id) {
				t.Fatalf("Verify(%q) = %+v, but Sign gives %q (current key) or %q (old key): the value was not produced by Sign",
					value, id, current.Sign(id), old.Sign(id))
			}
			if got, err := verifier.Verify(forger.Sign(id)); err == nil {
				t.Fatalf("the identity %+v signed with another key was accepted as %+v", id, got)
			}
		}
		// Whatever the value says, the forger's signature over it is refused.
		if got, err := verifier.Verify(macWith(forgerKey, value)); err == nil {
			t.Fatalf("payload %q signed with another key was accepted as %+v", value, got)
		}
	})
}

// FuzzVerifySignedPayload: even a payload carrying a valid MAC of the
// signing key is accepted only in the exact form Sign writes. (This one
// needs the key to reach: it checks that the parser is canonical, so that an
// identity has one cookie value per key.)
func FuzzVerifySignedPayload(f *testing.F) {
	verifier, current, old, _ := fuzzSigners(f)
	f.Add("v1.0123456789abcdef0123456789abcdef.1700000000000000")
	f.Add("v1.ffffffffffffffffffffffffffffffff.0")
	f.Add("v1.00000000000000000000000000000000.9223372036854775807")
	f.Add("v1.0123456789abcdef0123456789abcdef")
	f.Add("v2.0123456789abcdef0123456789abcdef.5")
	f.Add("v1.0123456789abcdef0123456789abcdef.5.6")
	f.Add("v1..5")
	f.Fuzz(func(t *testing.T, payload string) {
		for _, key := range [][]byte{currentKey, oldKey} {
			value := macWith(key, payload)
			id, err := verifier.Verify(value)
			if err != nil {
				continue
			}
			if value != current.Sign(id) && value != old.Sign(id) {
				t.Fatalf("Verify(%q) = %+v, but Sign gives %q: accepted a payload Sign never writes", value, id, current.Sign(id))
			}
		}
	})
}
