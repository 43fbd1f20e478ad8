package capture_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/capture"
	"github.com/surge-vote/surge/internal/testenv"
)

// BenchmarkVote measures the capture handler (decode, cookie, XADD through
// the pipelining producer to a Redis with appendfsync always) next to a bare
// Gin handler that answers 202 with no work, in one run. Compare the two
// ns/op; the target is capture ≥ 0.7× bare throughput under HTTP
// load (measured end to end by the load tool).
func BenchmarkVote(b *testing.B) {
	r := testenv.Redis(b)
	cfg := capture.DefaultConfig()
	cfg.Redis.Addr, cfg.CookieKeys, cfg.Node = r.Addr, []string{testKey}, "bench"
	cfg.NewVotersPerIP = 0 // every request is a new voter from one address
	s := startServer(b, cfg, capture.Options{})
	gin.SetMode(gin.ReleaseMode)
	bare := gin.New()
	bare.POST("/vote", func(c *gin.Context) { c.JSON(http.StatusAccepted, gin.H{"receipt": "x"}) })

	for _, h := range []struct {
		name    string
		handler http.Handler
	}{{"bare", bare}, {"capture", s.Handler()}} {
		b.Run(h.name, func(b *testing.B) {
			b.SetParallelism(64) // many requests in flight, as under load
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/vote", strings.NewReader(`{"choice":"cats"}`))
					req.Header.Set("Content-Type", "application/json")
					w := httptest.NewRecorder()
					h.handler.ServeHTTP(w, req)
					if w.Code != http.StatusAccepted {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}
