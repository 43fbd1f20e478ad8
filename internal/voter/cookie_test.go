package voter

import (
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	oldKey := []byte("old-key-0123456789abcdef")
	newKey := []byte("new-key-0123456789abcdef")
	signOld, _ := NewSigner([][]byte{oldKey})
	signNew, _ := NewSigner([][]byte{newKey, oldKey})
	onlyNew, _ := NewSigner([][]byte{newKey})

	id := Identity{ID: "0123456789abcdef0123456789abcdef", Version: 1700000000000000}
	good := signOld.Sign(id)
	tampered := strings.Replace(good, "1700000000000000", "1800000000000000", 1)

	tests := []struct {
		name   string
		signer *Signer
		value  string
		want   Identity
		ok     bool
	}{
		{"same key", signOld, good, id, true},
		{"rotated: old key still verifies", signNew, good, id, true},
		{"old key dropped", onlyNew, good, Identity{}, false},
		{"tampered version", signOld, tampered, Identity{}, false},
		{"empty", signOld, "", Identity{}, false},
		{"garbage", signOld, "not-a-cookie", Identity{}, false},
		{"bad base64", signOld, "v1.x.1.***", Identity{}, false},
		{"too long", signOld, strings.Repeat("a", 500), Identity{}, false},
		{"new key signs", signNew, signNew.Sign(id), id, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.signer.Verify(tt.value)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify err = %v, want ok=%v", err, tt.ok)
			}
			if got != tt.want {
				t.Fatalf("Verify = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestForgedSignatureWithOtherKey(t *testing.T) {
	real, _ := NewSigner([][]byte{[]byte("real-key-0123456789")})
	forger, _ := NewSigner([][]byte{[]byte("forger-key-0123456789")})
	forged := forger.Sign(Identity{ID: "0123456789abcdef0123456789abcdef", Version: 5})
	if _, err := real.Verify(forged); err == nil {
		t.Fatal("a cookie signed with another key was accepted")
	}
}

func TestNewSignerRejectsShortKeys(t *testing.T) {
	if _, err := NewSigner(nil); err == nil {
		t.Fatal("no keys accepted")
	}
	if _, err := NewSigner([][]byte{[]byte("short")}); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestNewIdentityIsFreshAndValid(t *testing.T) {
	a, b := NewIdentity(), NewIdentity()
	if a.ID == b.ID || !validID(a.ID) || a.Version != 0 {
		t.Fatalf("bad identities %+v %+v", a, b)
	}
}
