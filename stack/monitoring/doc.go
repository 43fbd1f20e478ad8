// Package monitoring holds surge's Prometheus configuration for the Swarm
// stack (prometheus.yml) and rules (rules.yml, with their promtool unit
// tests in rules_test.yml), and its Grafana dashboard and provisioning
// (grafana/), embedded for `stack render --monitoring`. Its Go tests run
// promtool on the configuration and the rules, and check that every metric
// the rules and the dashboard query is one the services export.
package monitoring
