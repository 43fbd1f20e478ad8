package signed_test

import (
	"strings"
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
