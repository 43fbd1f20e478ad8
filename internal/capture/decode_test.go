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

const (
	ctJSON = "application/json"
	ctForm = "application/x-www-form-urlencoded"
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
		{name: "text/plain", contentType: "text/plain", body: `{"choice":"cats"}`, code: surge.EINVALID},
		{name: "missing content type", contentType: "", body: `{"choice":"cats"}`, code: surge.EINVALID},
		{name: "malformed content type", contentType: "application/json; charset", body: `{"choice":"cats"}`, code: surge.EINVALID},
		{name: "multipart", contentType: "multipart/form-data; boundary=x", body: "--x--", code: surge.EINVALID},
		{name: "json suffix type", contentType: "application/vnd.api+json", body: `{"choice":"cats"}`, code: surge.EINVALID},
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
