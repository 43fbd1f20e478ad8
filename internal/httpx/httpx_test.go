package httpx

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/surge"
)

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"invalid", surge.Errorf(surge.EINVALID, "bad"), http.StatusBadRequest},
		{"not found", surge.Errorf(surge.ENOTFOUND, "nope"), http.StatusNotFound},
		{"too large", surge.Errorf(surge.ETOOLARGE, "big"), http.StatusRequestEntityTooLarge},
		{"conflict", surge.Errorf(surge.ECONFLICT, "exists"), http.StatusConflict},
		{"unsupported", surge.Errorf(surge.EUNSUPPORTED, "not JSON"), http.StatusUnsupportedMediaType},
		{"rate limited", surge.RateLimited("slow down", time.Second), http.StatusTooManyRequests},
		{"unavailable", surge.Unavailable("queue", errors.New("dial refused")), http.StatusServiceUnavailable},
		{"conflict", surge.Errorf(surge.ECONFLICT, "taken"), http.StatusConflict},
		{"internal code", surge.Errorf(surge.EINTERNAL, "oops"), http.StatusInternalServerError},
		{"unknown code", surge.Errorf("teapot", "short and stout"), http.StatusInternalServerError},
		{"plain error", errors.New("boom"), http.StatusInternalServerError},
		{"wrapped invalid", fmt.Errorf("decode: %w", surge.Errorf(surge.EINVALID, "bad")), http.StatusBadRequest},
		{"wrapped not found", fmt.Errorf("a: %w", fmt.Errorf("b: %w", surge.Errorf(surge.ENOTFOUND, "nope"))), http.StatusNotFound},
		{"wrapped too large", fmt.Errorf("read: %w", surge.Errorf(surge.ETOOLARGE, "big")), http.StatusRequestEntityTooLarge},
		{"wrapped unavailable", fmt.Errorf("enqueue: %w", surge.Unavailable("queue", errors.New("x"))), http.StatusServiceUnavailable},
		{"plain error wrapping nothing domain", fmt.Errorf("x: %w", errors.New("y")), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StatusOf(tt.err); got != tt.want {
				t.Fatalf("StatusOf(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// Retry-After says how long the refusal lasts, in whole seconds rounded up,
// and never less than 1.
func TestErrorRetryAfter(t *testing.T) {
	gin.SetMode(gin.TestMode)
	tests := []struct {
		name string
		err  error
		want string // "" means no header
	}{
		{"lockout with 59.2 s left", surge.RateLimited("locked", 59200*time.Millisecond), "60"},
		{"exactly 10 s", surge.RateLimited("slow down", 10*time.Second), "10"},
		{"a token in 1 ns", surge.RateLimited("slow down", time.Nanosecond), "1"},
		{"a token in 1.5 s", surge.RateLimited("slow down", 1500*time.Millisecond), "2"},
		{"no wait known", surge.Errorf(surge.ERATELIMIT, "slow down"), "1"},
		{"a wait already over", surge.RateLimited("slow down", -time.Second), "1"},
		{"wrapped", fmt.Errorf("admin: %w", surge.RateLimited("locked", 30*time.Second)), "30"},
		{"unavailable", surge.Unavailable("queue", errors.New("refused")), "1"},
		{"invalid: no header", surge.Errorf(surge.EINVALID, "bad"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
			Error(c, slog.New(slog.DiscardHandler), tt.err)
			if got := w.Header().Get("Retry-After"); got != tt.want {
				t.Fatalf("Retry-After %q, want %q", got, tt.want)
			}
		})
	}
}

func TestList(t *testing.T) {
	gin.SetMode(gin.TestMode)
	tests := []struct {
		name       string
		list       []string
		err        error
		wantStatus int
		wantBody   string
	}{
		{"nil list is an empty array", nil, nil, http.StatusOK, `[]`},
		{"a list", []string{"a", "b"}, nil, http.StatusOK, `["a","b"]`},
		{"an error", []string{"a"}, surge.Errorf(surge.ENOTFOUND, "no such poll"), http.StatusNotFound, `{"error":"no such poll"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
			List(c, slog.New(slog.DiscardHandler), tt.list, tt.err)
			if w.Code != tt.wantStatus || w.Body.String() != tt.wantBody {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body.String(), tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// A 429 or 503 always says when to retry: 1 s unless the handler knows
// better and set Retry-After itself.
