package main

import (
	"github.com/spf13/cobra"

	"github.com/surge-vote/surge/internal/stackfile"
)

// renderCommand prints docker-stack.yml for N shards and M workers, with TLS
// at HAProxy if asked:
//
//	go run ./stack render --shards 5 --workers 3 > docker-stack.yml
//	go run ./stack render --tls > docker-stack.tls.yml
func renderCommand() *cobra.Command {
	opt := stackfile.Defaults()
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the Docker Swarm stack file (docker-stack.yml) for N shards and M workers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := stackfile.Render(opt)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(text)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&opt.Shards, "shards", opt.Shards, "capture shards: web-k and redis-k each, on nodes labelled surge.shard.k=true")
	f.IntVar(&opt.Workers, "workers", opt.Workers, "worker replicas (each drains every shard)")
	f.IntVar(&opt.WebReplicas, "web-replicas", opt.WebReplicas, "frontends per shard")
	f.IntVar(&opt.AdminReplicas, "admin-replicas", opt.AdminReplicas, "admin replicas")
	f.IntVar(&opt.ResultReplicas, "result-replicas", opt.ResultReplicas, "result replicas")
	f.BoolVar(&opt.TLS, "tls", opt.TLS, "HTTPS at HAProxy (HTTPS_PORT, default 443) with the certificate and key in the Swarm secret "+
		stackfile.TLSSecret+"; HTTP redirects to it. Write the file next to docker-stack.yml: it finds haproxy.cfg from there")
	return cmd
}
