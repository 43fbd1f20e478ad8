package accounts

import (
	"net/mail"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/surge-vote/surge/internal/httpx/httpxtest"
	"github.com/surge-vote/surge/internal/surge"
)

// FuzzDecodeBody: the strict decoder refuses sign-up and login bodies with
// a client error, and accepts only what the README's contract allows.
func FuzzDecodeBody(f *testing.F) {
	httpxtest.BodySeeds(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, dst := range []any{&SignUp{}, &loginRequest{}} {
			httpxtest.CheckDecodeBody(t, contentType, body, dst)
		}
	})
}

// FuzzSignUpValidate: an accepted sign-up has a printable name of 1-100
// characters, one bare email address, and a password of 10 characters to
// 72 bytes; a refusal is a 400 naming only the sign-up's fields.
func FuzzSignUpValidate(f *testing.F) {
	for _, s := range [][3]string{
		{"Ada", "ada@example.com", "correct horse battery"},
		{" Ada ", " Ada@Example.COM ", "éééééééééé"},
		{"", "Ada <ada@example.com>", strings.Repeat("p", 73)},
		{"a\x00b", "a@b", "short"},
		{"\u202e", "\"quoted local\"@example.com", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, name, email, password string) {
		gotName, gotEmail, err := SignUp{Name: name, Email: email, Password: password}.Validate()
		if err != nil {
			var se *surge.Error
			if surge.ErrorCode(err) != surge.EINVALID || !asError(err, &se) || len(se.Fields) == 0 {
				t.Fatalf("refusal %v: want EINVALID with fields", err)
			}
			for k := range se.Fields {
				if k != "name" && k != "email" && k != "password" {
					t.Fatalf("refusal names field %q", k)
				}
			}
			return
		}
		if n := utf8.RuneCountInString(gotName); n < 1 || n > MaxNameLength || strings.TrimSpace(gotName) != gotName ||
			strings.IndexFunc(gotName, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			t.Fatalf("accepted name %q", gotName)
		}
		if a, err := mail.ParseAddress(gotEmail); err != nil || a.Address != gotEmail || len(gotEmail) > MaxEmail {
			t.Fatalf("accepted email %q (%v)", gotEmail, err)
		}
		if utf8.RuneCountInString(password) < MinPassword || len(password) > MaxPassword {
			t.Fatalf("accepted a password of %d bytes", len(password))
		}
	})
}

// FuzzSessionCookie: whatever a client sends as its session cookie,
// Verify never panics, and accepts only what Sign wrote.
func FuzzSessionCookie(f *testing.F) {
	s, err := newSessionSigner([][]byte{[]byte("test-cookie-key-0123456789")})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	good := s.Sign(session{Account: 7, ID: newSessionID(), Expires: now.Add(time.Hour)})
	for _, v := range []string{good, good + "=", strings.Replace(good, "s1.7.", "s1.8.", 1), "s1.7..1.x", "", "....", strings.Repeat("a", 300)} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, value string) {
		v, err := s.Verify(value, now)
		if err != nil {
			return
		}
		if v.Account <= 0 || !now.Before(v.Expires) || s.Sign(v) != value {
			t.Fatalf("accepted %q as %+v, which signs as %q", value, v, s.Sign(v))
		}
	})
}
