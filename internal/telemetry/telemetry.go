// Package telemetry sets up structured logs and the Prometheus metrics that
// every service's HTTP side exports.
package telemetry

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a JSON logger at the given level ("debug", "info", ...).
func NewLogger(w io.Writer, level, service string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("service", service)
}

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// RegisterBuildInfo adds surge_build_info{service,node,version} = 1 to reg,
// so that every series a target exports can be joined to the service and
// node it came from, whatever the scrape configuration names the target.
func RegisterBuildInfo(reg prometheus.Registerer, service, node string) {
	version := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		version = info.Main.Version
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "surge_build_info", Help: "Always 1: the service, node and version of this process.",
		ConstLabels: prometheus.Labels{"service": service, "node": node, "version": version},
	})
	g.Set(1)
	reg.MustRegister(g)
}

// MetricsHandler serves reg at /metrics.
func MetricsHandler(reg *prometheus.Registry) gin.HandlerFunc {
	return gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// HTTPMetrics returns a Gin middleware counting requests and their latency
// by route and status.
func HTTPMetrics(reg prometheus.Registerer, service string) gin.HandlerFunc {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "surge_http_requests_total", Help: "HTTP requests by route and status.",
		ConstLabels: prometheus.Labels{"service": service},
	}, []string{"route", "method", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "surge_http_request_seconds", Help: "HTTP request latency by route.",
		ConstLabels: prometheus.Labels{"service": service},
		Buckets:     prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"route", "method"})
	reg.MustRegister(requests, latency)
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
		latency.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
	}
}
