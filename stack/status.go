package main

import (
	"errors"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/status"
)

// statusCommand prints a running deployment's state on one screen, read
// from each service's /healthz and /metrics: by default the pipeline `stack
// run` (make run) keeps up from .surge, or the addresses given.
//
//	go run ./stack status
//	go run ./stack status --web 10.0.1.5:8080,10.0.2.5:8080 --workers 10.0.3.5:8080 --result 10.0.4.5:8080 --admin 10.0.4.6:8080
func statusCommand() *cobra.Command {
	var t status.Targets
	dir, timeout := ".surge", 3*time.Second
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print a running deployment's shards, backlog, workers, Postgres and services on one screen",
		Long: "Print a running deployment's state, read from each service's /healthz and /metrics: by default the\n" +
			"pipeline make run keeps up (its addresses are in <dir>/" + launcher.AddressesFile + "), or the services at the\n" +
			"addresses given. Exits 1 when something is not healthy.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if !f.Changed("web") && !f.Changed("workers") && !f.Changed("result") && !f.Changed("admin") {
				a, err := launcher.ReadAddresses(dir)
				if err != nil {
					return err
				}
				t = status.Targets{Web: a.Web, Workers: a.Workers, Result: a.Result, Admin: a.Admin}
			}
			r := status.Gather(cmd.Context(), &http.Client{}, t, timeout)
			if err := r.Write(cmd.OutOrStdout()); err != nil {
				return err
			}
			if len(r.Problems()) > 0 {
				return errors.New("not healthy")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", dir, "state directory of the pipeline make run started (its addresses file)")
	f.StringSliceVar(&t.Web, "web", nil, "frontends' addresses (host:port), instead of the local pipeline's")
	f.StringSliceVar(&t.Workers, "workers", nil, "workers' addresses")
	f.StringSliceVar(&t.Result, "result", nil, "result services' addresses")
	f.StringSliceVar(&t.Admin, "admin", nil, "admin services' addresses")
	f.DurationVar(&timeout, "timeout", timeout, "how long each service may take to answer")
	return cmd
}
