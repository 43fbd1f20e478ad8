package redis

import "testing"

func TestCompareIDsTable(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1-0", "1-0", 0},
		{"0-0", "0-0", 0},
		{"1-0", "2-0", -1},
		{"2-0", "1-0", 1},
		{"1-1", "1-2", -1},
		{"1-2", "1-1", 1},
		{"1-99", "2-0", -1}, // ms decides before seq
		{"2-0", "1-99", 1},  // ms decides before seq
		{"9-0", "10-0", -1}, // numeric, not lexicographic
		{"1-9", "1-10", -1}, // numeric, not lexicographic
		{"1700000000000-5", "1700000000000-5", 0},
		{"1700000000000-0", "1700000000001-0", -1},
		{"18446744073709551615-18446744073709551615", "18446744073709551615-18446744073709551614", 1}, // max uint64
		{"18446744073709551614-0", "18446744073709551615-0", -1},
		{"5", "5-0", 0}, // a bare ms means seq 0
		{"0", "0-0", 0}, // the "from the start" id
		{"0", "0-1", -1},
		{"0-0", "1-0", -1},
	}
	for _, tt := range tests {
		t.Run(tt.a+"_vs_"+tt.b, func(t *testing.T) {
			if got := compareIDs(tt.a, tt.b); got != tt.want {
				t.Fatalf("compareIDs(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := compareIDs(tt.b, tt.a); got != -tt.want {
				t.Fatalf("compareIDs(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
			}
		})
	}
}
