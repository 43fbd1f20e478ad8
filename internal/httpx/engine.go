package httpx

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/telemetry"
	"github.com/surge-vote/surge/internal/ui"
)

// EngineOptions describe what every service's Gin engine has.
type EngineOptions struct {
	Service        string
	Node           string
	Log            *slog.Logger
	Registry       *prometheus.Registry
	TrustedProxies []string // peers whose forwarding headers are believed; none if empty
	// Health checks the service's dependencies for /healthz; its error
	// names what is down.
	Health func(ctx context.Context) error
}

// NewEngine returns a Gin engine with panic recovery (a 500 with a JSON
// message), request metrics, /healthz, /metrics, the embedded assets under
// /static and a JSON 404. The service adds its own routes.
func NewEngine(o EngineOptions) (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(o.TrustedProxies); err != nil {
		return nil, fmt.Errorf("%s: trusted proxies: %w", o.Service, err)
	}
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		Error(c, o.Log, fmt.Errorf("panic: %v", rec))
	}))
	r.Use(telemetry.HTTPMetrics(o.Registry, o.Service))
	r.GET("/healthz", func(c *gin.Context) {
		if o.Health != nil {
			ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
			defer cancel()
			if err := o.Health(ctx); err != nil {
				c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "node": o.Node, "error": err.Error()})
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ok", "node": o.Node})
	})
	r.GET("/metrics", telemetry.MetricsHandler(o.Registry))
	r.StaticFS("/static", ui.Static())
	r.NoRoute(func(c *gin.Context) { Error(c, o.Log, surge.Errorf(surge.ENOTFOUND, "no such page")) })
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, ErrorBody{Error: "method " + c.Request.Method + " not allowed here"})
	})
	return r, nil
}
