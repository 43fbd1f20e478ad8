// Package monitoring holds surge's Prometheus rules (rules.yml, with their
// promtool unit tests in rules_test.yml) and its Grafana dashboard and
// provisioning (grafana/). Its Go tests run promtool on the rules and check
// that every metric the rules and the dashboard query is one the services
// export.
package monitoring
