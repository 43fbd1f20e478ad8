package signed_test

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/surge-vote/surge/internal/signed"
)

func TestSignOpen(t *testing.T) {
	oldKey, newKey := []byte("old-key-0123456789abcdef"), []byte("new-key-0123456789abcdef")
	mustNew := func(label string, keys ...[]byte) *signed.Signer {
		s, err := signed.New(label, keys)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := mustNew("a", oldKey)         // before the rotation
	during := mustNew("a", newKey, oldKey) // a new key prepended
	after := mustNew("a", newKey)          // the old one dropped
	other := mustNew("b", newKey, oldKey)  // another cookie, the same keys
	unlabelled := mustNew("", newKey, oldKey)
	v := before.Sign("payload.1")
	for _, tt := range []struct {
		name  string
		s     *signed.Signer
		value string
		ok    bool
	}{
		{"its own signer", before, v, true},
		{"after a new key is prepended", during, v, true},
		{"once the old key is dropped", after, v, false},
		{"signed with the new key", after, during.Sign("payload.1"), true},
		{"another label", other, v, false},
		{"no label", unlabelled, v, false},
		{"tampered payload", during, strings.Replace(v, "payload", "pay1oad", 1), false},
		{"padded signature", during, v + "=", false},
		{"no signature", during, "payload", false},
		{"over the length limit", during, before.Sign(strings.Repeat("p", 300)), false},
	} {
		got, ok := tt.s.Open(tt.value, 200)
		if ok != tt.ok || (ok && got != "payload.1") {
			t.Errorf("%s: Open = %q, %v; want ok %v", tt.name, got, ok, tt.ok)
		}
	}
	if _, err := signed.New("a", [][]byte{[]byte("short")}); err == nil {
		t.Error("a 5-byte key was accepted")
	}
	if _, err := signed.New("a", nil); err == nil {
		t.Error("no keys were accepted")
	}
}

// BenchmarkSignOpen signs a cookie-sized value and opens it, as the
// frontend does on every vote (the voter's cookie is verified, then
// signed again).
func BenchmarkSignOpen(b *testing.B) {
	s, err := signed.New("voter", [][]byte{[]byte("key-0123456789abcdef"), []byte("old-0123456789abcdef")})
	if err != nil {
		b.Fatal(err)
	}
	payload := "01HZZZZZZZZZZZZZZZZZZZZZZZ.1767323045123456"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Open(s.Sign(payload), 200); !ok {
			b.Fatal("a signed value did not open")
		}
	}
}

// The HMAC states are reused across calls: concurrent signers and openers
// still get each value's own MAC (run with -race).
func TestSignOpenConcurrently(t *testing.T) {
	old, err := signed.New("voter", [][]byte{[]byte("old-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := signed.New("voter", [][]byte{[]byte("key-0123456789abcdef"), []byte("old-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				payload := strconv.Itoa(g) + "-" + strconv.Itoa(i)
				if got, ok := s.Open(s.Sign(payload), 200); !ok || got != payload {
					t.Errorf("Open(Sign(%q)) = %q, %v", payload, got, ok)
					return
				}
				if got, ok := s.Open(old.Sign(payload), 200); !ok || got != payload {
					t.Errorf("a value signed with the old key: Open = %q, %v", got, ok)
					return
				}
				if _, ok := old.Open(s.Sign(payload), 200); ok {
					t.Errorf("the new key's value opened with the old key alone")
					return
				}
			}
		})
	}
	wg.Wait()
}
