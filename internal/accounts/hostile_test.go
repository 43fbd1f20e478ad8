package accounts_test

import (
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/httpx/httpxtest"
)

// Hostile sign-up, login and logout bodies: each gets a clear 4xx with a
// JSON message, and the store is never asked (nothing written, no session).
func TestHostileAccountRequests(t *testing.T) {
	s, store, _ := newService(t, nil)
	ts := serveService(t, s)
	big := strings.Repeat("a", 5000)
	var cases []httpxtest.Hostile
	for _, path := range []string{"/accounts", "/login"} {
		cases = append(cases,
			httpxtest.Hostile{Name: path + " JSON over max_body", Path: path, ContentType: httpxtest.JSON, Body: `{"email":"` + big + `"}`, Status: 413},
			httpxtest.Hostile{Name: path + " chunked over max_body", Path: path, ContentType: httpxtest.JSON, Chunked: true, Body: `{"email":"` + big + `"}`, Status: 413},
			httpxtest.Hostile{Name: path + " form over max_body", Path: path, ContentType: httpxtest.Form, Body: "email=" + big, Status: 413},
			httpxtest.Hostile{Name: path + " as text/plain", Path: path, ContentType: "text/plain", Body: `{}`, Status: 415},
			httpxtest.Hostile{Name: path + " without a content type", Path: path, Body: `{}`, Status: 415},
			httpxtest.Hostile{Name: path + " as multipart", Path: path, ContentType: "multipart/form-data; boundary=x", Body: "--x--\r\n", Status: 415},
			httpxtest.Hostile{Name: path + " truncated JSON", Path: path, ContentType: httpxtest.JSON, Body: `{"email":`, Status: 400},
			httpxtest.Hostile{Name: path + " two JSON values", Path: path, ContentType: httpxtest.JSON, Body: `{}{}`, Status: 400},
			httpxtest.Hostile{Name: path + " JSON array", Path: path, ContentType: httpxtest.JSON, Body: `[]`, Status: 400},
			httpxtest.Hostile{Name: path + " unknown field", Path: path, ContentType: httpxtest.JSON, Body: `{"email":"a@b.c","password":"x","admin":true}`, Status: 400},
			httpxtest.Hostile{Name: path + " password a number", Path: path, ContentType: httpxtest.JSON, Body: `{"email":"a@b.c","password":1234567890123}`, Status: 400},
			httpxtest.Hostile{Name: path + " password an object", Path: path, ContentType: httpxtest.JSON, Body: `{"email":"a@b.c","password":{"$gt":""}}`, Status: 400},
			httpxtest.Hostile{Name: path + " nested 1900 deep", Path: path, ContentType: httpxtest.JSON, Body: `{"email":` + httpxtest.Nested("[", "]", 1900) + `}`, Status: 400},
			httpxtest.Hostile{Name: path + " invalid UTF-8", Path: path, ContentType: httpxtest.JSON, Body: "{\"email\":\"a\xff@b.c\",\"password\":\"0123456789\"}", Status: 400},
			httpxtest.Hostile{Name: path + " escaped invalid UTF-8 in a form", Path: path, ContentType: httpxtest.Form, Body: "email=a%ff%40b.c&password=0123456789", Status: 400},
			httpxtest.Hostile{Name: path + " empty JSON", Path: path, ContentType: httpxtest.JSON, Body: `{}`, Status: 400},
		)
	}
	cases = append(cases,
		httpxtest.Hostile{Name: "sign-up with a NUL in the name", Path: "/accounts", ContentType: httpxtest.JSON,
			Body: `{"name":"a\u0000b","email":"a@example.com","password":"0123456789"}`, Status: 400},
		httpxtest.Hostile{Name: "sign-up with a 73-byte password", Path: "/accounts", ContentType: httpxtest.JSON,
			Body: `{"name":"Ada","email":"a@example.com","password":"` + strings.Repeat("é", 36) + `x"}`, Status: 400},
		httpxtest.Hostile{Name: "sign-up with a header in the email", Path: "/accounts", ContentType: httpxtest.JSON,
			Body: `{"name":"Ada","email":"a@example.com\r\nBcc: b@example.com","password":"0123456789"}`, Status: 400},
		httpxtest.Hostile{Name: "sign-up with two addresses", Path: "/accounts", ContentType: httpxtest.JSON,
			Body: `{"name":"Ada","email":"a@example.com, b@example.com","password":"0123456789"}`, Status: 400},
		httpxtest.Hostile{Name: "login with a missing password", Path: "/login", ContentType: httpxtest.Form, Body: "email=a%40example.com", Status: 400},
		httpxtest.Hostile{Name: "my orders with a forged cookie", Method: "GET", Path: "/accounts/me/orders",
			Header: []string{"Cookie", "surge_session=s1.1." + strings.Repeat("A", 43) + ".9999999999.AAAA"}, Status: 401},
		httpxtest.Hostile{Name: "my orders with a 100 KiB cookie", Method: "GET", Path: "/accounts/me/orders",
			Header: []string{"Cookie", "surge_session=" + strings.Repeat("a", 100<<10)}, Status: 401},
	)
	httpxtest.Run(t, ts.URL, nil, cases, func(t *testing.T) {
		if store.Calls != 0 {
			t.Fatalf("a refused request asked the store %d times", store.Calls)
		}
	})
}
