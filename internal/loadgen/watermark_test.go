package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// The verifier reads the results once they are at the drained backlog's
// watermark (another result replica may still be behind), and on a poll of
// its own compares them with the audit at once: a difference at the
// watermark is a finding, not something to wait out.
func TestVerifyReadsResultsAtTheDrainedWatermark(t *testing.T) {
	cases := []struct {
		name      string
		served    []pollResults // in turn; the last one stays
		exclusive bool
		wantOK    bool
		wantReads int64
	}{
		{"another replica behind, then at the watermark",
			[]pollResults{{Seq: 4, Counts: map[string]int64{"red": 0}}, {Seq: 4, Counts: map[string]int64{"red": 0}}, {Seq: 5, Counts: map[string]int64{"red": 1}}},
			true, true, 3},
		{"counts that differ at the watermark are a finding at once",
			[]pollResults{{Seq: 5, Counts: map[string]int64{"red": 2}}},
			true, false, 1},
		{"a shared poll: other clients' votes may still land",
			[]pollResults{{Seq: 5, Counts: map[string]int64{"red": 0}}, {Seq: 6, Counts: map[string]int64{"red": 1}}},
			false, true, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reads atomic.Int64
			mux := http.NewServeMux()
			reply := func(w http.ResponseWriter, v any) { json.NewEncoder(w).Encode(v) }
			mux.HandleFunc("GET /results/api/backlog", func(w http.ResponseWriter, _ *http.Request) {
				reply(w, map[string]any{"drained": true, "shards": []map[string]any{{"shard": 1}}, "seq": map[string]int64{"p": 5}})
			})
			mux.HandleFunc("GET /results/api/polls/p", func(w http.ResponseWriter, _ *http.Request) {
				n := reads.Add(1)
				reply(w, tc.served[min(int(n), len(tc.served))-1])
			})
			mux.HandleFunc("GET /admin/api/polls/{poll}/audit", func(w http.ResponseWriter, _ *http.Request) {
				reply(w, []AuditVote{{"B", "red", 15, "E03"}})
			})
			ts := httptest.NewServer(mux)
			defer ts.Close()
			u, _ := url.Parse(ts.URL)
			l := NewLedger()
			l.VoteAcked("", "#1", "red", "E03", cookie("B", 15))
			r := &runner{cfg: Config{DrainTimeout: 10 * time.Second}, out: io.Discard, ledger: l,
				api:    &api{client: ts.Client(), base: u, admin: u, results: u},
				report: &Report{Poll: "p", Exclusive: tc.exclusive}}

			err := r.verify(context.Background())
			var ve *VerifyError
			switch {
			case tc.wantOK && err != nil:
				t.Fatalf("verify: %v", err)
			case !tc.wantOK && !errors.As(err, &ve):
				t.Fatalf("verify: %v, want a verdict with findings", err)
			}
			if got := reads.Load(); got != tc.wantReads {
				t.Errorf("results read %d times, want %d", got, tc.wantReads)
			}
		})
	}
}
