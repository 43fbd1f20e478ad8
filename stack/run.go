package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-vote/surge/internal/launcher"
)

func runCommand(getenv func(string) string) *cobra.Command {
	opt := launcher.Options{Dir: ".surge", Shards: 3, Workers: 2, Port: 8080, PostgresMembers: 3}
	if p, err := strconv.Atoi(getenv("PORT")); err == nil {
		opt.Port = p
	}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Start the whole pipeline on this machine until interrupted",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if opt.BinDir == "" {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				opt.BinDir = filepath.Dir(self)
			}
			out := cmd.OutOrStdout()
			pg := "postgres"
			if opt.PostgresMembers > 1 {
				pg = fmt.Sprintf("postgres (%d Patroni members, 3 etcd)", opt.PostgresMembers)
			}
			fmt.Fprintf(out, "starting %d shards, %d workers, %s, haproxy (state in %s)...\n", opt.Shards, opt.Workers, pg, opt.Dir)
			c, err := launcher.Up(ctx, opt)
			if err != nil {
				return err
			}
			if c.TLSURL != "" {
				fmt.Fprintf(out, "\nHTTPS at %s (self-signed certificate in %s)\n", c.TLSURL, filepath.Join(opt.Dir, "tls.pem"))
			}
			writeBanner(out, c, opt.Dir, postgresRoles(ctx, c.Patroni))
			<-ctx.Done()
			fmt.Fprintln(out, "\nstopping...")
			start := time.Now()
			if err := c.Stop(); err != nil {
				return err
			}
			fmt.Fprintf(out, "stopped cleanly in %s\n", time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.Dir, "dir", opt.Dir, "state directory (data, logs, generated config)")
	f.StringVar(&opt.BinDir, "bin", "", "directory holding the web, worker and result binaries (default: next to this one)")
	f.IntVar(&opt.Port, "port", opt.Port, "HAProxy's front port on 127.0.0.1 (default $PORT or 8080)")
	f.IntVar(&opt.Shards, "shards", opt.Shards, "capture shards (Redis + web each)")
	f.IntVar(&opt.Workers, "workers", opt.Workers, "workers")
	f.IntVar(&opt.RatePerIP, "rate-per-ip", 0, "HAProxy: requests per client address per 10 s before 429 (0: no limit)")
	f.IntVar(&opt.MaxConn, "max-conn", launcher.DefaultMaxConn, "HAProxy: connections at once, in all")
	f.IntVar(&opt.ConnPerIP, "conn-per-ip", launcher.DefaultConnPerIP, "HAProxy: open connections per client address; past it new ones are closed (0: no cap)")
	f.IntVar(&opt.StreamsPerResult, "streams-per-result", launcher.DefaultStreamsPerResult, "HAProxy: live-result streams per result server; past it 503 (0: no cap)")
	f.IntVar(&opt.PostgresMembers, "postgres-members", opt.PostgresMembers,
		"Postgres servers: 2 or more run that many Patroni members (synchronous replication, automatic failover); 1 runs one Postgres")
	f.BoolVar(&opt.TLS, "tls", false, "also serve HTTPS with a self-signed certificate; HTTP then redirects to it")
	return cmd
}

// writeBanner tells the user where everything is: the pages through
// HAProxy, each service's own /metrics (on a port picked at each start),
// Postgres (each Patroni member with its role in roles, see postgresRoles),
// and the state directory that outlives the run.
func writeBanner(w io.Writer, c *launcher.Cluster, dir string, roles []string) {
	fmt.Fprintf(w, "\nsurge is up:\n")
	for _, l := range [][2]string{
		{"vote", c.URL + "/"},
		{"shop", c.URL + "/shop"},
		{"results", c.URL + "/results"},
		{"API", c.URL + "/results/api/polls/cats-vs-dogs"},
		{"items", c.URL + "/api/items"},
		{"admin", fmt.Sprintf("%s/admin  (user %s, password %s)", c.URL, c.AdminUser, c.AdminPassword)},
	} {
		fmt.Fprintf(w, "  %-9s %s\n", l[0], l[1])
	}
	services := append(append(append([]*launcher.Service{}, c.Web...), c.Workers...), c.Result, c.Admin)
	for i, s := range services {
		label := ""
		if i == 0 {
			label = "metrics"
		}
		fmt.Fprintf(w, "  %-9s %-9s http://%s/metrics\n", label, s.Name, s.Addr)
	}
	writePostgres(w, c, roles)
	fmt.Fprintf(w, "  %-9s go run ./stack status  (shards, backlog, workers, Postgres, from the services above)\n", "status")
	fmt.Fprintf(w, "  %-9s %s (Postgres, etcd, Redis, keys: kept across runs; make clean deletes it)\n", "data", dir)
	fmt.Fprintf(w, "  %-9s %s\n\nPress Ctrl-C to stop.\n", "logs", filepath.Join(dir, "logs"))
}

// writePostgres lists where Postgres is: each Patroni member's server and
// REST API, with its role when the banner was written (Patroni moves the
// primary on failover: its REST API and patronictl say where it is now).
func writePostgres(w io.Writer, c *launcher.Cluster, roles []string) {
	if c.Patroni == nil {
		if c.Postgres != nil {
			fmt.Fprintf(w, "  %-9s 127.0.0.1:%d  (one server; --postgres-members 3 runs it under Patroni)\n", "postgres", c.Postgres.Port)
		}
		return
	}
	for i, m := range c.Patroni.Members {
		label, role := "", "?"
		if i == 0 {
			label = "postgres"
		}
		if i < len(roles) && roles[i] != "" {
			role = roles[i]
		}
		fmt.Fprintf(w, "  %-9s %-4s 127.0.0.1:%d  %-12s Patroni REST API http://%s\n", label, m.Name, m.Port, role, m.API)
	}
	m := c.Patroni.Members[0]
	fmt.Fprintf(w, "  %-9s primary now: curl -s http://%s/cluster  or  patronictl -c %s list\n", "", m.API, m.Config)
}

// postgresRoles asks Patroni what each member is now: "primary", "sync
// standby" or "standby"; nil without Patroni or if it does not answer.
func postgresRoles(ctx context.Context, p *launcher.Patroni) []string {
	if p == nil {
		return nil
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil
	}
	roles := make([]string, len(p.Members))
	for i := range roles {
		roles[i] = "standby"
	}
	for _, i := range st.Sync {
		if i >= 0 {
			roles[i] = "sync standby"
		}
	}
	roles[st.Primary] = "primary"
	return roles
}
