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
//	go run ./stack render --monitoring --publish-grafana > docker-stack.monitoring.yml
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
	f.BoolVar(&opt.Monitoring, "monitoring", opt.Monitoring, "add Prometheus (scraping every task through Swarm DNS, with the alert rules) and Grafana "+
		"(the provisioned dashboard; its admin password in the Swarm secret "+stackfile.GrafanaPasswordSecret+"), on internal networks")
	f.BoolVar(&opt.PublishGrafana, "publish-grafana", opt.PublishGrafana, "publish Grafana's port (GRAFANA_PORT, default 3000) on its node; needs --monitoring")
	return cmd
}
