package capture_test

import (
	"fmt"
	"testing"

	"github.com/surge-vote/surge/internal/capture"
)

// The shards a frontend writes to, and how many copies: a one-shard config
// of old (redis.addr alone) keeps one copy; with several shards the default
// is two, and the own shard is named or found by redis.addr.
func TestConfigRing(t *testing.T) {
	three := []string{"r1:6379", "r2:6379", "r3:6379"}
	tests := []struct {
		name   string
		mutate func(*capture.Config)
		want   string // addrs own copies
	}{
		{"defaults: redis.addr alone, one copy", func(c *capture.Config) {}, "[127.0.0.1:6379] 0 1"},
		{"shards and shard", func(c *capture.Config) { c.Shards, c.Shard = three, 2 }, "[r1:6379 r2:6379 r3:6379] 1 2"},
		{"own shard found by redis.addr", func(c *capture.Config) { c.Shards, c.Redis.Addr = three, "r3:6379" }, "[r1:6379 r2:6379 r3:6379] 2 2"},
		{"one copy by choice", func(c *capture.Config) { c.Shards, c.Shard, c.Copies = three, 1, 1 }, "[r1:6379 r2:6379 r3:6379] 0 1"},
		{"three copies of three", func(c *capture.Config) { c.Shards, c.Shard, c.Copies = three, 3, 3 }, "[r1:6379 r2:6379 r3:6379] 2 3"},
		{"two shards", func(c *capture.Config) { c.Shards, c.Shard = three[:2], 1 }, "[r1:6379 r2:6379] 0 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := capture.DefaultConfig()
			tt.mutate(&cfg)
			addrs, own, n, err := cfg.Ring()
			if got := fmt.Sprint(addrs, own, n); err != nil || got != tt.want {
				t.Fatalf("Ring() = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}
