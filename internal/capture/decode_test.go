package capture

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/surge-vote/surge/internal/surge"
)

func TestDecodeVoteCases(t *testing.T) {
	const limit = 4 << 10
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name        string
		contentType string // "" means no header
		body        string
		limit       int64 // 0 means limit
		want        voteRequest
		code        string // "" means success
	}{
		// Successes.
		{name: "JSON ok", contentType: ctJSON, body: `{"poll":"cats-vs-dogs","choice":"cats"}`,
			want: voteRequest{Poll: "cats-vs-dogs", Choice: "cats"}},
		{name: "JSON without poll", contentType: ctJSON, body: `{"choice":"dogs"}`,
			want: voteRequest{Choice: "dogs"}},
		{name: "JSON with charset", contentType: "application/json; charset=utf-8", body: `{"choice":"cats"}`,
			want: voteRequest{Choice: "cats"}},
		{name: "JSON media type is case-insensitive", contentType: "Application/JSON", body: `{"choice":"cats"}`,
			want: voteRequest{Choice: "cats"}},
		{name: "JSON with surrounding whitespace", contentType: ctJSON, body: " \n{\"choice\":\"cats\"}\n\t ",
			want: voteRequest{Choice: "cats"}},
		{name: "JSON with unicode choice (checked later)", contentType: ctJSON, body: `{"choice":"chàts"}`,
			want: voteRequest{Choice: "chàts"}},
		{name: "form ok", contentType: ctForm, body: "poll=cats-vs-dogs&choice=dogs",
			want: voteRequest{Poll: "cats-vs-dogs", Choice: "dogs", form: true}},
		{name: "form without poll", contentType: ctForm, body: "choice=cats",
			want: voteRequest{Choice: "cats", form: true}},
		{name: "form with extra fields", contentType: ctForm, body: "choice=cats&csrf=x&submit=Vote",
			want: voteRequest{Choice: "cats", form: true}},
		{name: "form with escaped value", contentType: ctForm, body: "choice=big%20cats",
			want: voteRequest{Choice: "big cats", form: true}},
		{name: "body exactly at limit", contentType: ctJSON, limit: int64(len(`{"choice":"cats"}`)), body: `{"choice":"cats"}`,
			want: voteRequest{Choice: "cats"}},

		// JSON errors.
		{name: "unknown JSON field", contentType: ctJSON, body: `{"choice":"cats","extra":1}`, code: surge.EINVALID},
		{name: "invalid JSON", contentType: ctJSON, body: `{"choice":"cats"`, code: surge.EINVALID},
		{name: "not JSON at all", contentType: ctJSON, body: `choice=cats`, code: surge.EINVALID},
		{name: "empty JSON body", contentType: ctJSON, body: ``, code: surge.EINVALID},
		{name: "JSON array", contentType: ctJSON, body: `[{"choice":"cats"}]`, code: surge.EINVALID},
		{name: "trailing data: second object", contentType: ctJSON, body: `{"choice":"cats"}{"choice":"dogs"}`, code: surge.EINVALID},
		{name: "trailing data: garbage", contentType: ctJSON, body: `{"choice":"cats"} x`, code: surge.EINVALID},
		{name: "trailing data: closing brace", contentType: ctJSON, body: `{"choice":"cats"}}`, code: surge.EINVALID},
		{name: "trailing data: closing bracket", contentType: ctJSON, body: `{"choice":"cats"}]`, code: surge.EINVALID},
		{name: "missing choice", contentType: ctJSON, body: `{"poll":"cats-vs-dogs"}`, code: surge.EINVALID},
		{name: "empty choice", contentType: ctJSON, body: `{"choice":""}`, code: surge.EINVALID},
		{name: "null choice", contentType: ctJSON, body: `{"choice":null}`, code: surge.EINVALID},
		{name: "choice of wrong type", contentType: ctJSON, body: `{"choice":1}`, code: surge.EINVALID},
		{name: "deeply nested value", contentType: ctJSON, body: `{"choice":"cats","poll":` + deep(1000) + `}`, code: surge.EINVALID},
		{name: "nesting past the decoder's depth limit", contentType: ctJSON, limit: 1 << 20,
			body: `{"choice":"cats","poll":` + deep(20000) + `}`, code: surge.EINVALID},
		{name: "huge number in a string field", contentType: ctJSON,
			body: `{"choice":"cats","poll":123456789012345678901234567890123456789012345678901234567890}`, code: surge.EINVALID},
		{name: "huge exponent in a string field", contentType: ctJSON, body: `{"choice":1e999999}`, code: surge.EINVALID},
		{name: "invalid UTF-8 in JSON", contentType: ctJSON, body: "{\"choice\":\"c\xffats\"}", code: surge.EINVALID},

		// Form errors.
		{name: "form missing choice", contentType: ctForm, body: "poll=cats-vs-dogs", code: surge.EINVALID},
		{name: "form empty body", contentType: ctForm, body: "", code: surge.EINVALID},
		{name: "form bad escape", contentType: ctForm, body: "choice=%zz", code: surge.EINVALID},
		{name: "form semicolon separator", contentType: ctForm, body: "poll=p;choice=cats", code: surge.EINVALID},
		{name: "invalid UTF-8 in form", contentType: ctForm, body: "choice=c\xffats", code: surge.EINVALID},

		// Size.
		{name: "body over limit", contentType: ctJSON, body: `{"choice":"` + strings.Repeat("a", limit) + `"}`, code: surge.ETOOLARGE},
		{name: "body one byte over limit", contentType: ctJSON, limit: int64(len(`{"choice":"cats"}`)) - 1, body: `{"choice":"cats"}`, code: surge.ETOOLARGE},
		{name: "form body over limit", contentType: ctForm, body: "choice=" + strings.Repeat("a", limit), code: surge.ETOOLARGE},

		// Content type.
		{name: "text/plain", contentType: "text/plain", body: `{"choice":"cats"}`, code: surge.EUNSUPPORTED},
		{name: "missing content type", contentType: "", body: `{"choice":"cats"}`, code: surge.EUNSUPPORTED},
		{name: "malformed content type", contentType: "application/json; charset", body: `{"choice":"cats"}`, code: surge.EUNSUPPORTED},
		{name: "multipart", contentType: "multipart/form-data; boundary=x", body: "--x--", code: surge.EUNSUPPORTED},
		{name: "json suffix type", contentType: "application/vnd.api+json", body: `{"choice":"cats"}`, code: surge.EUNSUPPORTED},
		{name: "unsupported type over the limit", contentType: "text/plain", body: strings.Repeat("a", limit+1), code: surge.EUNSUPPORTED},
		{name: "unsupported type, invalid UTF-8", contentType: "text/plain", body: "\xff", code: surge.EUNSUPPORTED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/vote", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			lim := tt.limit
			if lim == 0 {
				lim = limit
			}
			got, err := decodeVote(r, lim)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("decodeVote: %v", err)
				}
				if got != tt.want {
					t.Fatalf("decodeVote = %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("decodeVote = %+v, nil; want a %q error", got, tt.code)
			}
			if code := surge.ErrorCode(err); code != tt.code {
				t.Fatalf("ErrorCode(%v) = %q, want %q", err, code, tt.code)
			}
			if got != (voteRequest{}) {
				t.Fatalf("decodeVote returned %+v with its error, want the zero value", got)
			}
		})
	}
}

func TestDecodeVoteReadError(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/vote", io.NopCloser(iotest.ErrReader(errors.New("connection reset"))))
	r.Header.Set("Content-Type", ctJSON)
	_, err := decodeVote(r, 1024)
	if code := surge.ErrorCode(err); code != surge.EINVALID {
		t.Fatalf("ErrorCode(%v) = %q, want %q", err, code, surge.EINVALID)
	}
}

func TestDecodeVoteFormIgnoresQuery(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/vote?choice=dogs&poll=other", strings.NewReader("choice=cats"))
	r.Header.Set("Content-Type", ctForm)
	got, err := decodeVote(r, 1024)
	if err != nil {
		t.Fatalf("decodeVote: %v", err)
	}
	if want := (voteRequest{Choice: "cats", form: true}); got != want {
		t.Fatalf("decodeVote = %+v, want %+v (body only, not the query string)", got, want)
	}
}

func TestWantsHTML(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"application/json", false},
		{"text/html", true},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
		{"*/*", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.accept != "" {
			r.Header.Set("Accept", tt.accept)
		}
		if got := wantsHTML(r); got != tt.want {
			t.Errorf("wantsHTML(Accept: %q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

// goInternals returns the first fragment of msg that belongs to Go or to
// this package rather than to the client's request, or "".
func goInternals(msg string) string {
	for _, frag := range []string{"Go ", "go ", "struct", "capture.", "main.", "json:", "unmarshal", "Request", "[]", "RawMessage",
		"reflect", "int64", "float64", "interface"} {
		if strings.Contains(msg, frag) {
			return frag
		}
	}
	return ""
}

// A refused JSON body is explained in the client's terms: the field and what
// it must be, the unknown field and the known ones, or the byte where the
// syntax breaks; never a Go type or struct name.
func TestJSONErrorsSpeakTheClientsTerms(t *testing.T) {
	tests := []struct {
		name string
		dst  func() any
		body string
		want []string // fragments the message must hold
	}{
		{"vote: choice a number", func() any { return &voteRequest{} }, `{"choice":1}`, []string{`"choice" must be a string, not a number`}},
		{"vote: choice a huge number", func() any { return &voteRequest{} }, `{"choice":1e999999}`, []string{`"choice" must be a string, not a number`}},
		{"vote: choice an object", func() any { return &voteRequest{} }, `{"choice":{"a":1}}`, []string{`"choice" must be a string, not an object`}},
		{"vote: choice true", func() any { return &voteRequest{} }, `{"choice":true}`, []string{`"choice" must be a string, not true or false`}},
		{"vote: poll a list", func() any { return &voteRequest{} }, `{"choice":"cats","poll":[[]]}`, []string{`"poll" must be a string, not a list`}},
		{"vote: unknown field", func() any { return &voteRequest{} }, `{"choice":"cats","foo":1}`, []string{`unknown field "foo"`, `"poll", "choice"`}},
		{"vote: sets its voter", func() any { return &voteRequest{} }, `{"choice":"cats","voter":"x"}`, []string{`unknown field "voter"`}},
		{"vote: a string body", func() any { return &voteRequest{} }, `"cats"`, []string{"must be a JSON object, not a string"}},
		{"vote: a list body", func() any { return &voteRequest{} }, `[{"choice":"cats"}]`, []string{"must be a JSON object, not a list"}},
		{"vote: unquoted key", func() any { return &voteRequest{} }, `{choice:"cats"}`, []string{"invalid JSON at byte 2"}},
		{"vote: bad value", func() any { return &voteRequest{} }, `{"choice":cats}`, []string{"invalid JSON at byte 11"}},
		{"vote: after a BOM", func() any { return &voteRequest{} }, "\ufeff{\"choice\":\"cats\"}", []string{"invalid JSON at byte 1"}},
		{"vote: truncated", func() any { return &voteRequest{} }, `{"choice":`, []string{"ends at byte 10"}},
		{"vote: empty", func() any { return &voteRequest{} }, ``, []string{"empty"}},
		{"vote: two objects", func() any { return &voteRequest{} }, `{"choice":"cats"}  {"choice":"dogs"}`, []string{"invalid JSON at byte 20", "nothing may follow"}},
		{"order: unknown field", func() any { return &orderRequest{} }, `{"item":1,"quantity":1,"status":"confirmed"}`,
			[]string{`unknown field "status"`, `"order_id", "item", "quantity"`}},
		{"order: order_id a number", func() any { return &orderRequest{} }, `{"order_id":7,"item":1,"quantity":1}`, []string{`"order_id" must be a string, not a number`}},
		{"item: name a number", func() any { return &itemRequest{} }, `{"name":1,"quantity":1,"price":"1"}`, []string{`"name" must be a string, not a number`}},
		{"item: unknown field", func() any { return &itemRequest{} }, `{"name":"Mug","id":7}`, []string{`unknown field "id"`, `"name", "quantity", "price"`}},
		{"poll: options a string", func() any { return &pollRequest{} }, `{"id":"tea","options":"yes,no"}`, []string{`"options" must be a list of strings, not a string`}},
		{"poll: an option a number", func() any { return &pollRequest{} }, `{"id":"tea","options":["yes",2]}`, []string{`every item of "options" must be a string, not a number`}},
		{"poll: id a number", func() any { return &pollRequest{} }, `{"id":1e999,"options":["a","b"]}`, []string{`"id" must be a string, not a number`}},
		{"poll: title an object", func() any { return &pollRequest{} }, `{"id":"tea","title":{},"options":["a","b"]}`, []string{`"title" must be a string, not an object`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", ctJSON)
			_, err := decodeBody(r, 4<<10, tt.dst())
			if code := surge.ErrorCode(err); code != surge.EINVALID {
				t.Fatalf("%s: code %q (%v), want %q", tt.body, code, err, surge.EINVALID)
			}
			msg := surge.ErrorMessage(err)
			if frag := goInternals(msg); frag != "" {
				t.Errorf("message %q shows Go internals (%q)", msg, frag)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not say %q", msg, w)
				}
			}
		})
	}
}
