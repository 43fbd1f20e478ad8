package launcher_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
)

// The local HAProxy takes a frontend that answers 503 (its Redis is gone)
// out of rotation at its first 503, and puts it back once healthy.
func TestHAProxyDropsAFailingFrontendAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: starts haproxy")
	}
	testenv.FrontendFailover(t, launcher.RiseTime, func(web []string) string {
		port, err := launcher.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		front := "127.0.0.1:" + strconv.Itoa(port)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := launcher.StartHAProxy(ctx, t.TempDir(), launcher.HAProxyConfig{Bind: front, Web: web, Result: web})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Kill)
		return front
	})
}
