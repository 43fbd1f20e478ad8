package e2e

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/status"
	"github.com/surge-vote/surge/internal/testenv"
)

// The pipeline make run starts writes its services' addresses where `stack
// status` reads them, and status finds every part of it healthy: each
// service, each shard readable, Postgres up.
func TestStatusOfTheLocalPipeline(t *testing.T) {
	var dir string
	c := up(t, 2, 1, func(o *launcher.Options) { dir = o.Dir })
	a, err := launcher.ReadAddresses(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, c.Addresses()) || len(a.Web) != 2 || len(a.Workers) != 1 {
		t.Fatalf("addresses file %+v, want the cluster's %+v", a, c.Addresses())
	}
	targets := status.Targets{Web: a.Web, Workers: a.Workers, Result: a.Result, Admin: a.Admin}
	var rep status.Report
	testenv.Eventually(t, 30*time.Second, func() error {
		rep = status.Gather(context.Background(), http.DefaultClient, targets, 3*time.Second)
		if p := rep.Problems(); len(p) > 0 {
			return fmt.Errorf("not healthy: %s", strings.Join(p, "; "))
		}
		return nil
	})
	if len(rep.Shards) != 2 || len(rep.Services) != 5 || rep.Postgres != "up" {
		t.Fatalf("report %+v: want 2 shards, 5 services, Postgres up", rep)
	}
}
