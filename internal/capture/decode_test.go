package capture

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/httpx/httpxtest"
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
		{name: "JSON ok", contentType: httpx.ContentJSON, body: `{"poll":"cats-vs-dogs","choice":"cats"}`,
			want: voteRequest{Poll: "cats-vs-dogs", Choice: "cats"}},
		{name: "JSON without poll", contentType: httpx.ContentJSON, body: `{"choice":"dogs"}`,
			want: voteRequest{Choice: "dogs"}},
		{name: "JSON with charset", contentType: "application/json; charset=utf-8", body: `{"choice":"cats"}`,
			want: voteRequest{Choice: "cats"}},
		{name: "JSON media type is case-insensitive", contentType: "Application/JSON", body: `{"choice":"cats"}`,
			want: voteRequest{Choice: "cats"}},
		{name: "JSON with surrounding whitespace", contentType: httpx.ContentJSON, body: " \n{\"choice\":\"cats\"}\n\t ",
			want: voteRequest{Choice: "cats"}},
		{name: "JSON with unicode choice (checked later)", contentType: httpx.ContentJSON, body: `{"choice":"chàts"}`,
			want: voteRequest{Choice: "chàts"}},
		{name: "form ok", contentType: httpx.ContentForm, body: "poll=cats-vs-dogs&choice=dogs",
			want: voteRequest{Poll: "cats-vs-dogs", Choice: "dogs", form: true}},
		{name: "form without poll", contentType: httpx.ContentForm, body: "choice=cats",
			want: voteRequest{Choice: "cats", form: true}},
		{name: "form with extra fields", contentType: httpx.ContentForm, body: "choice=cats&csrf=x&submit=Vote",
			want: voteRequest{Choice: "cats", form: true}},
		{name: "form with escaped value", contentType: httpx.ContentForm, body: "choice=big%20cats",
			want: voteRequest{Choice: "big cats", form: true}},
		{name: "body exactly at limit", contentType: httpx.ContentJSON, limit: int64(len(`{"choice":"cats"}`)), body: `{"choice":"cats"}`,
			want: voteRequest{Choice: "cats"}},

		// JSON errors.
		{name: "unknown JSON field", contentType: httpx.ContentJSON, body: `{"choice":"cats","extra":1}`, code: surge.EINVALID},
		{name: "invalid JSON", contentType: httpx.ContentJSON, body: `{"choice":"cats"`, code: surge.EINVALID},
		{name: "not JSON at all", contentType: httpx.ContentJSON, body: `choice=cats`, code: surge.EINVALID},
		{name: "empty JSON body", contentType: httpx.ContentJSON, body: ``, code: surge.EINVALID},
		{name: "JSON array", contentType: httpx.ContentJSON, body: `[{"choice":"cats"}]`, code: surge.EINVALID},
		{name: "trailing data: second object", contentType: httpx.ContentJSON, body: `{"choice":"cats"}{"choice":"dogs"}`, code: surge.EINVALID},
		{name: "trailing data: garbage", contentType: httpx.ContentJSON, body: `{"choice":"cats"} x`, code: surge.EINVALID},
		{name: "trailing data: closing brace", contentType: httpx.ContentJSON, body: `{"choice":"cats"}}`, code: surge.EINVALID},
		{name: "trailing data: closing bracket", contentType: httpx.ContentJSON, body: `{"choice":"cats"}]`, code: surge.EINVALID},
		{name: "missing choice", contentType: httpx.ContentJSON, body: `{"poll":"cats-vs-dogs"}`, code: surge.EINVALID},
		{name: "empty choice", contentType: httpx.ContentJSON, body: `{"choice":""}`, code: surge.EINVALID},
		{name: "null choice", contentType: httpx.ContentJSON, body: `{"choice":null}`, code: surge.EINVALID},
		{name: "choice of wrong type", contentType: httpx.ContentJSON, body: `{"choice":1}`, code: surge.EINVALID},
		{name: "deeply nested value", contentType: httpx.ContentJSON, body: `{"choice":"cats","poll":` + deep(1000) + `}`, code: surge.EINVALID},
		{name: "nesting past the decoder's depth limit", contentType: httpx.ContentJSON, limit: 1 << 20,
			body: `{"choice":"cats","poll":` + deep(20000) + `}`, code: surge.EINVALID},
		{name: "huge number in a string field", contentType: httpx.ContentJSON,
			body: `{"choice":"cats","poll":123456789012345678901234567890123456789012345678901234567890}`, code: surge.EINVALID},
		{name: "huge exponent in a string field", contentType: httpx.ContentJSON, body: `{"choice":1e999999}`, code: surge.EINVALID},
		{name: "invalid UTF-8 in JSON", contentType: httpx.ContentJSON, body: "{\"choice\":\"c\xffats\"}", code: surge.EINVALID},

		// Form errors.
		{name: "form missing choice", contentType: httpx.ContentForm, body: "poll=cats-vs-dogs", code: surge.EINVALID},
		{name: "form empty body", contentType: httpx.ContentForm, body: "", code: surge.EINVALID},
		{name: "form bad escape", contentType: httpx.ContentForm, body: "choice=%zz", code: surge.EINVALID},
		{name: "form semicolon separator", contentType: httpx.ContentForm, body: "poll=p;choice=cats", code: surge.EINVALID},
		{name: "invalid UTF-8 in form", contentType: httpx.ContentForm, body: "choice=c\xffats", code: surge.EINVALID},

		// Size.
		{name: "body over limit", contentType: httpx.ContentJSON, body: `{"choice":"` + strings.Repeat("a", limit) + `"}`, code: surge.ETOOLARGE},
		{name: "body one byte over limit", contentType: httpx.ContentJSON, limit: int64(len(`{"choice":"cats"}`)) - 1, body: `{"choice":"cats"}`, code: surge.ETOOLARGE},
		{name: "form body over limit", contentType: httpx.ContentForm, body: "choice=" + strings.Repeat("a", limit), code: surge.ETOOLARGE},

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
	r.Header.Set("Content-Type", httpx.ContentJSON)
	_, err := decodeVote(r, 1024)
	if code := surge.ErrorCode(err); code != surge.EINVALID {
		t.Fatalf("ErrorCode(%v) = %q, want %q", err, code, surge.EINVALID)
	}
}

func TestDecodeVoteFormIgnoresQuery(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/vote?choice=dogs&poll=other", strings.NewReader("choice=cats"))
	r.Header.Set("Content-Type", httpx.ContentForm)
	got, err := decodeVote(r, 1024)
	if err != nil {
		t.Fatalf("decodeVote: %v", err)
	}
	if want := (voteRequest{Choice: "cats", form: true}); got != want {
		t.Fatalf("decodeVote = %+v, want %+v (body only, not the query string)", got, want)
	}
}

// A refused JSON vote or order is explained in the client's terms: the
// field and what it must be, the unknown field and the known ones, or the
// byte where the syntax breaks; never a Go type or struct name.
func TestJSONErrorsSpeakTheClientsTerms(t *testing.T) {
	httpxtest.CheckJSONErrors(t, []httpxtest.JSONErrorCase{
		{Name: "vote: choice a number", Dst: func() any { return &voteRequest{} }, Body: `{"choice":1}`, Want: []string{`"choice" must be a string, not a number`}},
		{Name: "vote: choice a huge number", Dst: func() any { return &voteRequest{} }, Body: `{"choice":1e999999}`, Want: []string{`"choice" must be a string, not a number`}},
		{Name: "vote: choice an object", Dst: func() any { return &voteRequest{} }, Body: `{"choice":{"a":1}}`, Want: []string{`"choice" must be a string, not an object`}},
		{Name: "vote: choice true", Dst: func() any { return &voteRequest{} }, Body: `{"choice":true}`, Want: []string{`"choice" must be a string, not true or false`}},
		{Name: "vote: poll a list", Dst: func() any { return &voteRequest{} }, Body: `{"choice":"cats","poll":[[]]}`, Want: []string{`"poll" must be a string, not a list`}},
		{Name: "vote: unknown field", Dst: func() any { return &voteRequest{} }, Body: `{"choice":"cats","foo":1}`, Want: []string{`unknown field "foo"`, `"poll", "choice"`}},
		{Name: "vote: sets its voter", Dst: func() any { return &voteRequest{} }, Body: `{"choice":"cats","voter":"x"}`, Want: []string{`unknown field "voter"`}},
		{Name: "vote: a string body", Dst: func() any { return &voteRequest{} }, Body: `"cats"`, Want: []string{"must be a JSON object, not a string"}},
		{Name: "vote: a list body", Dst: func() any { return &voteRequest{} }, Body: `[{"choice":"cats"}]`, Want: []string{"must be a JSON object, not a list"}},
		{Name: "vote: unquoted key", Dst: func() any { return &voteRequest{} }, Body: `{choice:"cats"}`, Want: []string{"invalid JSON at byte 2"}},
		{Name: "vote: bad value", Dst: func() any { return &voteRequest{} }, Body: `{"choice":cats}`, Want: []string{"invalid JSON at byte 11"}},
		{Name: "vote: after a BOM", Dst: func() any { return &voteRequest{} }, Body: "\ufeff{\"choice\":\"cats\"}", Want: []string{"invalid JSON at byte 1"}},
		{Name: "vote: truncated", Dst: func() any { return &voteRequest{} }, Body: `{"choice":`, Want: []string{"ends at byte 10"}},
		{Name: "vote: empty", Dst: func() any { return &voteRequest{} }, Body: ``, Want: []string{"empty"}},
		{Name: "vote: two objects", Dst: func() any { return &voteRequest{} }, Body: `{"choice":"cats"}  {"choice":"dogs"}`, Want: []string{"invalid JSON at byte 20", "nothing may follow"}},
		{Name: "order: unknown field", Dst: func() any { return &orderRequest{} }, Body: `{"item":1,"quantity":1,"status":"confirmed"}`, Want: []string{`unknown field "status"`, `"order_id", "item", "quantity"`}},
		{Name: "order: order_id a number", Dst: func() any { return &orderRequest{} }, Body: `{"order_id":7,"item":1,"quantity":1}`, Want: []string{`"order_id" must be a string, not a number`}},
	})
}
