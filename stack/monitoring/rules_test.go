package monitoring

import (
	"os/exec"
	"testing"
)

// promtool returns the path of promtool, failing the test if it is missing:
// the suite installs it (make test-deps), so a missing one is a broken
// setup, not a reason to pass.
func promtool(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs promtool (skipped in -short)")
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (make test-deps, or apt-get install prometheus)")
	}
	return path
}

// The rules are valid, each alert fires when it should and not on a healthy
// stack (rules_test.yml), and the Prometheus configuration the Swarm stack
// mounts (with the rules) is valid.
func TestRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", "rules.yml"}, {"test", "rules", "rules_test.yml"}, {"check", "config", "prometheus.yml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
