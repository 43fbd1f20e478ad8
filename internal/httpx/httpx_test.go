package httpx

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

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
		{"unavailable", surge.Unavailable("queue", errors.New("dial refused")), http.StatusServiceUnavailable},
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
