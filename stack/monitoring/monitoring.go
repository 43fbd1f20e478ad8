package monitoring

import (
	"embed"
	"io/fs"
)

// Dir is this folder's path from the repository root, where
// docker-stack.yml lives: the monitoring stack's Swarm configs are read from
// there.
const Dir = "stack/monitoring"

// Files the monitoring stack mounts, by their path under Dir.
const (
	PrometheusConfig  = "prometheus.yml"
	Rules             = "rules.yml"
	GrafanaDatasource = "grafana/provisioning/datasources/prometheus.yml"
	GrafanaProvider   = "grafana/provisioning/dashboards/surge.yml"
	GrafanaDashboard  = "grafana/dashboards/surge.json"
)

//go:embed prometheus.yml rules.yml grafana
var files embed.FS

// File returns the content of name, a path under Dir (one of the constants
// above).
func File(name string) []byte {
	b, err := fs.ReadFile(files, name)
	if err != nil {
		panic(err) // embedded: a missing file is a build error
	}
	return b
}
