package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/launcher"
)

// `stack status` reads the addresses `stack run` wrote in its state
// directory, says so when there is none, and exits non-zero when a
// service does not answer. (internal/status tests the report against
// running services.)
func TestStatusCommand(t *testing.T) {
	status := func(args ...string) (string, error) { return stackCommand("status", args...) }
	dir := t.TempDir()
	if _, err := status("--dir", dir); err == nil || !strings.Contains(err.Error(), "make run") {
		t.Fatalf("no addresses file: %v, want an error that says to start make run", err)
	}
	gone, err := launcher.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", gone)
	os.WriteFile(filepath.Join(dir, launcher.AddressesFile), []byte(`{"web":["`+addr+`"],"workers":[],"result":[],"admin":[]}`), 0o644)
	out, err := status("--dir", dir)
	if err == nil || !strings.Contains(out, "web at "+addr+": no answer") || !strings.Contains(out, "no worker reported any shard") {
		t.Fatalf("a frontend that does not answer: %v\n%s", err, out)
	}
	// Flags instead of the file.
	out, err = status("--dir", dir, "--result", addr)
	if err == nil || !strings.Contains(out, "result at "+addr+": no answer") || strings.Contains(out, "web at") {
		t.Fatalf("--result %s: %v\n%s", addr, err, out)
	}
}
