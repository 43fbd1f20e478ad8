package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A run of some phases keeps the others' figures, dates and notes from the
// results file, and drops what it measures anew.
func TestKeepOtherPhases(t *testing.T) {
	var old Results
	old.Date, old.Rounds = "2026-11-22T05:34:25Z", 3
	old.Phases = []PhaseInfo{{Name: "capture", Seconds: 69}, {Name: "drain", Seconds: 152}, {Name: "copies", Seconds: 90}}
	old.Capture.Web = figure("/s", []float64{7000, 8000, 7500})
	old.Drain.Votes = 1_000_000
	old.Copies.Drain.Votes = 100
	old.Notes = []string{"drain round 1: the counts differ", "copies drain, 2 copies, round 1: the counts differ"}
	path := filepath.Join(t.TempDir(), "results.json")
	data, _ := json.Marshal(old)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}

	r := &Results{Date: "2026-12-06T10:00:00Z", Rounds: 3, Only: []string{"copies"}}
	if err := r.keep(path, map[string]bool{"copies": true}); err != nil {
		t.Fatal(err)
	}
	if r.Capture.Web.Median != 7500 || r.Drain.Votes != 1_000_000 || r.Copies.Drain.Votes != 0 {
		t.Fatalf("kept capture %v, drain votes %d; copies votes %d, want 0", r.Capture.Web, r.Drain.Votes, r.Copies.Drain.Votes)
	}
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name)
		if p.Date != old.Date || p.Rounds != 3 {
			t.Errorf("phase %s kept with date %q, rounds %d", p.Name, p.Date, p.Rounds)
		}
	}
	if !slices.Equal(names, []string{"capture", "drain"}) || !slices.Equal(r.Notes, old.Notes[:1]) {
		t.Fatalf("phases %v, notes %q", names, r.Notes)
	}
	r.evaluate()
	if table := r.Table(); !strings.Contains(table, "measured 2026-11-22T05:34:25Z, 3 rounds") || !strings.Contains(table, "this run measured only copies") {
		t.Fatalf("table does not say which figures are older:\n%s", table)
	}

	fresh := &Results{}
	if err := fresh.keep(filepath.Join(t.TempDir(), "none.json"), map[string]bool{"copies": true}); err != nil || len(fresh.Phases) != 0 {
		t.Fatalf("no results file: %v, %v", err, fresh.Phases)
	}
}
