package launcher

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// waitReady ends on the first of: the probe succeeds, the process exits,
// the probe gives up for good, the caller's ctx ends, the bound passes.
func TestWaitReady(t *testing.T) {
	notYet := errors.New("connection refused")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		cmd    string // "sleep" stays up, "true" exits at once
		bound  time.Duration
		probe  func(n int) error
		want   error  // nil, or what the error must wrap
		text   string // a substring of the error
		probes int    // the most probes allowed; 0 for no bound
	}{
		{"ready on the third probe", context.Background(), "sleep", time.Minute, func(n int) error {
			if n < 3 {
				return notYet
			}
			return nil
		}, nil, "", 3},
		{"the process exits", context.Background(), "true", 10 * time.Second, func(int) error { return notYet },
			errExited, "exited", 0},
		{"never ready: the last probe's error after the bound", context.Background(), "sleep", 300 * time.Millisecond,
			func(int) error { return notYet }, context.DeadlineExceeded, "not ready within 300ms", 0},
		{"a permanent failure stops at once", context.Background(), "sleep", time.Minute,
			func(int) error { return backoff.Permanent(notYet) }, notYet, "connection refused", 1},
		{"the caller gave up", cancelled, "sleep", time.Minute, func(int) error { return notYet },
			context.Canceled, "connection refused", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := StartProc(ProcSpec{Name: tt.cmd, Path: "/bin/" + tt.cmd, Args: []string{"60"},
				Log: filepath.Join(t.TempDir(), "log")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Kill)
			n := 0
			err = waitReady(tt.ctx, p, tt.bound, func(context.Context) error { n++; return tt.probe(n) })
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("err = %v, want one wrapping %v", err, tt.want)
			case !strings.Contains(errString(err), tt.text):
				t.Fatalf("err = %v, want one saying %q", err, tt.text)
			}
			if tt.probes > 0 && n > tt.probes {
				t.Fatalf("%d probes, want at most %d", n, tt.probes)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
