package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestValidateSafety(t *testing.T) {
	ctx := context.Background()
	ok := func(change func(*Config)) Config {
		c := DefaultConfig()
		change(&c)
		return c
	}
	for _, c := range []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"defaults", DefaultConfig(), ""},
		{"localhost", ok(func(c *Config) { c.Target = "http://localhost:9000" }), ""},
		{"ipv6 loopback", ok(func(c *Config) { c.Target = "http://[::1]:9000" }), ""},
		{"remote without --target", ok(func(c *Config) { c.Target = "http://192.0.2.10:8080" }), "not a loopback address"},
		{"remote admin URL without --target", ok(func(c *Config) { c.AdminURL = "http://192.0.2.10:8080" }), "not a loopback address"},
		{"remote with --target", ok(func(c *Config) { c.Target = "http://192.0.2.10:8080"; c.AllowRemote = true }), ""},
		{"no duration", ok(func(c *Config) { c.Duration = 0 }), "bounded in time"},
		{"no request bound", ok(func(c *Config) { c.MaxRequests = 0 }), "bounded in count"},
		{"not http", ok(func(c *Config) { c.Target = "ftp://127.0.0.1/" }), "not an http(s) base URL"},
		{"bad mode", ok(func(c *Config) { c.Mode = "burst" }), "neither"},
		{"max without objective", ok(func(c *Config) { c.Mode = ModeMax; c.Objective = 0 }), "objective"},
		{"ratio above 1", ok(func(c *Config) { c.ChangeRatio = 1.5 }), "fractions"},
		{"orders without items", ok(func(c *Config) { c.Items = 0 }), "items"},
		{"carts of every item", ok(func(c *Config) { c.CartLines = 3 }), ""},
		{"carts of 20 lines", ok(func(c *Config) { c.Items, c.CartLines = 20, 20 }), ""},
		{"carts longer than the items", ok(func(c *Config) { c.CartLines = 4 }), "at most items (3)"},
		{"carts of 21 lines", ok(func(c *Config) { c.Items, c.CartLines = 30, 21 }), "cart-lines must be from 1 to 20"},
		{"carts of no lines", ok(func(c *Config) { c.CartLines = 0 }), "cart-lines"},
		{"negative rate", ok(func(c *Config) { c.Rate = -1 }), "rate"},
		{"no timeout", ok(func(c *Config) { c.Timeout = 0 * time.Second }), "timeout"},
	} {
		err := c.cfg.Validate(ctx)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// Run refuses before sending anything when the bounds or the target are wrong.
func TestRunRefusesUnsafeConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Target = "http://192.0.2.10:8080"
	if _, err := Run(context.Background(), cfg, &strings.Builder{}); err == nil {
		t.Fatal("a remote target ran without --target")
	}
}
