package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
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
	// Health checks the service's dependencies for /healthz. Wrap each
	// failure with Down, so the answer can name what is down.
	Health func(ctx context.Context) error
}

// clientIPHeader carries ClientIP's answer to Gin (its TrustedPlatform), so
// that c.ClientIP() agrees with ClientIP. The engine overwrites whatever a
// client sent under this name.
const clientIPHeader = "X-Surge-Client-Ip"

// NewEngine returns a Gin engine with panic recovery (a 500 with a JSON
// message), security headers on every answer, request metrics, /healthz,
// /metrics, the embedded assets under /static and a JSON 404. The service
// adds its own routes.
func NewEngine(o EngineOptions) (*gin.Engine, error) {
	trusted, err := ParseProxies(o.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Service, err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// Gin's own reading of X-Forwarded-For walks left past trusted-looking
	// entries a client can write; ClientIP does not, and Gin is told its
	// answer.
	if err := r.SetTrustedProxies(nil); err != nil {
		return nil, fmt.Errorf("%s: trusted proxies: %w", o.Service, err)
	}
	r.TrustedPlatform = clientIPHeader
	r.Use(func(c *gin.Context) {
		c.Request.Header.Set(clientIPHeader, ClientIP(c.Request, trusted))
		SecurityHeaders(c.Writer.Header())
	})
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		Error(c, o.Log, fmt.Errorf("panic: %v", rec))
	}))
	telemetry.RegisterBuildInfo(o.Registry, o.Service, o.Node)
	r.Use(telemetry.HTTPMetrics(o.Registry, o.Service))
	r.GET("/healthz", func(c *gin.Context) {
		if o.Health != nil {
			ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
			defer cancel()
			if err := o.Health(ctx); err != nil {
				// The detail (addresses, driver messages) is for the log.
				failing, degraded := Problems(err)
				if len(failing) == 0 && len(degraded) > 0 {
					o.Log.Warn("health degraded", "degraded", strings.Join(degraded, ", "), "err", err)
					c.JSON(http.StatusOK, gin.H{"status": "degraded", "node": o.Node, "degraded": strings.Join(degraded, ", ")})
					return
				}
				body := gin.H{"status": "unavailable", "node": o.Node, "failing": namesOrUnknown(failing)}
				if len(degraded) > 0 {
					body["degraded"] = strings.Join(degraded, ", ")
				}
				o.Log.Warn("health check failed", "failing", body["failing"], "err", err)
				c.JSON(http.StatusServiceUnavailable, body)
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

// ContentSecurityPolicy allows this origin's own scripts, styles, images,
// EventSource and fetch, and forms posted to it; nothing inline, no plugins,
// and no framing by any page.
const ContentSecurityPolicy = "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; frame-ancestors 'none'"

// SecurityHeaders sets what every answer carries: the CSP, a refusal to be
// framed (for browsers without frame-ancestors) and no content sniffing.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
}

// Unhealthy is a failed health check: the dependency that is down, and why.
type Unhealthy struct {
	Dependency string // "redis", "postgres": what /healthz names
	Err        error  // the detail: logged, never answered
	// Degraded is a problem the service works around: /healthz still
	// answers 200 and names it, so an orchestrator does not restart a
	// service that a restart cannot help and that is still doing its job.
	Degraded bool
}

func (e *Unhealthy) Error() string { return e.Dependency + ": " + e.Err.Error() }
func (e *Unhealthy) Unwrap() error { return e.Err }

// Down marks err as the failure of a dependency; nil stays nil.
func Down(dependency string, err error) error {
	if err == nil {
		return nil
	}
	return &Unhealthy{Dependency: dependency, Err: err}
}

// Degraded marks err as a dependency's failure that the service works
// around; nil stays nil.
func Degraded(dependency string, err error) error {
	if err == nil {
		return nil
	}
	return &Unhealthy{Dependency: dependency, Err: err, Degraded: true}
}

// Problems names the dependencies a health error says are down and those
// it says are degraded (errors.Join keeps several), each in the order found.
func Problems(err error) (failing, degraded []string) {
	var walk func(error)
	walk = func(err error) {
		var u *Unhealthy
		switch e := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			switch {
			case !errors.As(err, &u):
			case u.Degraded:
				degraded = append(degraded, u.Dependency)
			default:
				failing = append(failing, u.Dependency)
			}
		}
	}
	walk(err)
	return failing, degraded
}

// Failing names every dependency a health error says is down, or
// "unknown" where it names none.
func Failing(err error) string {
	failing, _ := Problems(err)
	return namesOrUnknown(failing)
}

func namesOrUnknown(names []string) string {
	if len(names) == 0 {
		return "unknown"
	}
	return strings.Join(names, ", ")
}
