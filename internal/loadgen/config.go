// Package loadgen is the engine of `surge load`: paced or maximal load
// against a surge deployment (votes from voters with their own cookies,
// some of whom change their vote, and orders), a latency and throughput
// report from HDR histograms, and a verifier that compares what was
// acknowledged with what the system counted once its queues drain.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// Modes.
const (
	ModeRate = "rate" // a constant rate (or as fast as possible with Rate 0) for a duration
	ModeMax  = "max"  // the highest rate whose latency holds the objective
)

// Config is one run of the load tool.
type Config struct {
	Target string // base URL: HAProxy or one frontend
	// AllowRemote permits a target that is not on this machine. The CLI sets
	// it only when --target is given explicitly.
	AllowRemote bool
	AdminURL    string // admin API base; defaults to Target
	ResultsURL  string // results API base; defaults to Target
	AdminUser   string
	AdminPass   string

	Mode        string
	Rate        float64       // requests/s; 0 = as fast as Connections allow (rate mode)
	Duration    time.Duration // bound on the whole load phase
	MaxRequests int64         // bound on the number of requests
	Connections int           // concurrent requests at most
	Timeout     time.Duration // per request

	// Max mode: rates are stepped up (doubling) until a step misses the
	// objective, then bisected.
	Objective     time.Duration // latency objective at ObjectiveQ
	ObjectiveQ    float64       // percentile, e.g. 99
	MaxErrorRatio float64       // a step with more errors than this fails
	StartRate     float64
	StepDuration  time.Duration
	Precision     float64 // stop bisecting when the bracket is this narrow (fraction)

	Voters      int
	ChangeRatio float64
	Poll        string   // "" = a new poll for this run when the admin API is at hand, else cats-vs-dogs
	Choices     []string // the poll's options; read from the results API when empty
	OrderRatio  float64
	RepeatRatio float64
	Items       int
	Stock       int64
	MaxQuantity int
	// CartLines: each order is a cart of this many lines (distinct items,
	// at most Items); 1 sends the single-item form.
	CartLines int

	Verify       bool
	DrainTimeout time.Duration
	// Stop, when closed, ends the load early as if Duration had passed: the
	// requests in flight are answered, and the run reports and verifies
	// (a cancelled ctx skips the verification).
	Stop <-chan struct{}

	JSONPath string // report file; "" for none
	PlotPath string // .png or .svg; "" for none
	Seed     uint64

	// Progress receives the live display; nil for none. TTY selects the
	// progress bar over plain lines.
	Progress io.Writer
	TTY      bool
}

// DefaultConfig returns the defaults of `surge load`.
func DefaultConfig() Config {
	return Config{
		Target:        "http://127.0.0.1:8080",
		AdminUser:     "admin",
		Mode:          ModeRate,
		Rate:          500,
		Duration:      10 * time.Second,
		MaxRequests:   1_000_000,
		Connections:   256,
		Timeout:       10 * time.Second,
		Objective:     50 * time.Millisecond,
		ObjectiveQ:    99,
		MaxErrorRatio: 0.001,
		StartRate:     500,
		StepDuration:  5 * time.Second,
		Precision:     0.05,
		Voters:        10_000,
		ChangeRatio:   0.3,
		OrderRatio:    0.1,
		RepeatRatio:   0.02,
		Items:         3,
		Stock:         100,
		MaxQuantity:   3,
		CartLines:     1,
		DrainTimeout:  2 * time.Minute,
		JSONPath:      ".surge/load/report.json",
		PlotPath:      ".surge/load/plot.png",
	}
}

// Validate checks the bounds and the safety rule: every URL the tool sends
// to must be on this machine unless AllowRemote is set.
func (c *Config) Validate(ctx context.Context) error {
	var errs []error
	switch {
	case c.Mode != ModeRate && c.Mode != ModeMax:
		errs = append(errs, fmt.Errorf("mode %q is neither %q nor %q", c.Mode, ModeRate, ModeMax))
	case c.Duration <= 0:
		errs = append(errs, errors.New("duration must be positive: a load is always bounded in time"))
	case c.MaxRequests <= 0:
		errs = append(errs, errors.New("max-requests must be positive: a load is always bounded in count"))
	case c.Rate < 0:
		errs = append(errs, errors.New("rate must be 0 (as fast as possible) or positive"))
	case c.Connections <= 0:
		errs = append(errs, errors.New("connections must be positive"))
	case c.Timeout <= 0:
		errs = append(errs, errors.New("timeout must be positive"))
	case c.Voters <= 0:
		errs = append(errs, errors.New("voters must be positive"))
	case c.ChangeRatio < 0 || c.ChangeRatio > 1 || c.OrderRatio < 0 || c.OrderRatio > 1 || c.RepeatRatio < 0 || c.RepeatRatio > 1:
		errs = append(errs, errors.New("change, order and repeat ratios are fractions from 0 to 1"))
	case c.OrderRatio > 0 && (c.Items <= 0 || c.Stock < 0 || c.MaxQuantity < 1 || c.MaxQuantity > 100):
		errs = append(errs, errors.New("orders need items > 0, stock >= 0 and max-quantity from 1 to 100"))
	case c.OrderRatio > 0 && (c.CartLines < 1 || c.CartLines > 20 || c.CartLines > c.Items):
		errs = append(errs, fmt.Errorf("cart-lines must be from 1 to 20 and at most items (%d): a cart has each item once", c.Items))
	case c.Mode == ModeMax && (c.Objective <= 0 || c.ObjectiveQ <= 0 || c.ObjectiveQ >= 100 || c.StartRate <= 0 || c.StepDuration <= 0):
		errs = append(errs, errors.New("max mode needs a positive objective, a percentile below 100, a start rate and a step duration"))
	}
	for _, u := range []string{c.Target, c.AdminURL, c.ResultsURL} {
		if u == "" {
			continue
		}
		if err := checkTarget(ctx, u, c.AllowRemote); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkTarget accepts an http(s) URL whose host is this machine, or any
// host when remote targets are allowed.
func checkTarget(ctx context.Context, raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) base URL", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s is not a loopback address: pass --target explicitly to load another machine", host)
		}
		return nil
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, not a loopback address: pass --target explicitly to load another machine", host, ip)
		}
	}
	return nil
}
