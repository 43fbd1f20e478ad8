// Package httpx holds what every service's HTTP side shares: the one
// mapping from domain errors to status codes, the strict decoder of JSON
// and form bodies, the client's address behind trusted proxies, and serving
// with graceful shutdown.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/surge"
)

// StatusOf maps an error to its HTTP status.
func StatusOf(err error) int {
	switch surge.ErrorCode(err) {
	case surge.EINVALID:
		return http.StatusBadRequest
	case surge.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case surge.ENOTFOUND:
		return http.StatusNotFound
	case surge.ECONFLICT:
		return http.StatusConflict
	case surge.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case surge.EUNSUPPORTED:
		return http.StatusUnsupportedMediaType
	case surge.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case surge.ERATELIMIT:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// ErrorBody is the JSON shape of every error answer.
type ErrorBody struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
}

// Error answers with err's status and a JSON message. Internal errors are
// logged and hidden from the client.
func Error(c *gin.Context, log *slog.Logger, err error) {
	status := StatusOf(err)
	body := ErrorBody{Error: surge.ErrorMessage(err)}
	var e *surge.Error
	if errors.As(err, &e) {
		body.Fields = e.Fields
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		c.Header("Retry-After", retryAfterSeconds(surge.RetryAfter(err)))
	}
	if status >= 500 {
		log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "status", status, "err", err)
	}
	c.AbortWithStatusJSON(status, body)
}

// retryAfterSeconds is a Retry-After value for a wait of d: whole seconds,
// rounded up so that a client never comes back too early, and at least 1
// (a dependency that is down carries no wait: a second is a fair guess).
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// List answers a list as a JSON array (an empty one, never null), or err as
// Error does.
func List[T any](c *gin.Context, log *slog.Logger, list []T, err error) {
	if err != nil {
		Error(c, log, err)
		return
	}
	if list == nil {
		list = []T{}
	}
	c.JSON(http.StatusOK, list)
}

// Serve runs srv on ln until ctx ends, then stops accepting, lets in-flight
// requests finish (up to grace) and returns.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down %s: %w", ln.Addr(), err)
	}
	return nil
}

// CrossOriginProtection refuses unsafe requests from other origins (CSRF)
// with a 403 and a JSON message, like every other error answer.
func CrossOriginProtection(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header())
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(ErrorBody{Error: "cross-origin request refused"})
	}))
	return cop.Handler(h)
}

// NewServer returns an http.Server with the timeouts every service uses.
// ReadHeaderTimeout bounds slow clients.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
