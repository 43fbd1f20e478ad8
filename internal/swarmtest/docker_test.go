package swarmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// docker runs the docker CLI and returns its trimmed stdout; stderr is part
// of the error.
func docker(ctx context.Context, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("docker %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// must is docker that fails the test on error.
func must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(context.Background(), nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lines(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(strings.TrimSpace(s), "\n")
}

// permanent is an error that no amount of waiting fixes (a double count
// stays a double count): eventually returns it at once.
type permanent struct{ error }

// eventually polls f every interval until it returns nil or a permanent
// error, or the timeout passes; it returns f's last error then.
func eventually(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// moduleRoot finds the directory holding go.mod, where docker-stack.yml is.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}

// stackServices returns the stack's services as name → "running/desired".
func stackServices(stack string) (map[string]string, error) {
	out, err := docker(context.Background(), nil, "service", "ls", "--filter", "label=com.docker.stack.namespace="+stack,
		"--format", "{{.Name}} {{.Replicas}}")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range lines(out) {
		name, replicas, _ := strings.Cut(l, " ")
		m[name] = replicas
	}
	return m, nil
}

// converged reports whether every service runs all its desired tasks and every
// running container of the stack is healthy.
func converged(stack string) error {
	svcs, err := stackServices(stack)
	if err != nil {
		return err
	}
	if len(svcs) == 0 {
		return errors.New("no services")
	}
	var wrong []string
	for name, r := range svcs {
		run, want, _ := strings.Cut(r, "/")
		want, _, _ = strings.Cut(want, " ") // "1/1 (max 1 per node)"
		if run != want || want == "0" {
			wrong = append(wrong, name+" "+r)
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("not converged: %s", strings.Join(wrong, ", "))
	}
	out, err := docker(context.Background(), nil, "ps", "--filter", "label=com.docker.stack.namespace="+stack,
		"--format", "{{.Names}}\t{{.Status}}")
	if err != nil {
		return err
	}
	for _, l := range lines(out) {
		if !strings.Contains(l, "(healthy)") {
			wrong = append(wrong, l)
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("not healthy: %s", strings.Join(wrong, "; "))
	}
	return nil
}

// containers returns the IDs of a service's running containers.
func containers(t testing.TB, service string) []string {
	t.Helper()
	return lines(must(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service))
}
