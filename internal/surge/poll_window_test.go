package surge

import (
	"testing"
	"time"
)

func TestPollWindow(t *testing.T) {
	opens := time.Date(2027, 2, 7, 22, 0, 0, 0, time.UTC)
	closes := opens.Add(time.Hour)
	bounded := Poll{ID: "p", Options: []string{"a", "b"}, OpensAt: &opens, ClosesAt: &closes}
	onlyClose := Poll{ID: "p", Options: []string{"a", "b"}, ClosesAt: &closes}
	tests := []struct {
		name  string
		poll  Poll
		at    time.Time
		state string
		err   string
	}{
		{"before it opens", bounded, opens.Add(-time.Nanosecond), PollScheduled, "poll not open yet"},
		{"as it opens", bounded, opens, PollOpen, ""},
		{"the last moment", bounded, closes.Add(-time.Nanosecond), PollOpen, ""},
		{"as it closes", bounded, closes, PollClosed, "poll closed"},
		{"after", bounded, closes.Add(time.Hour), PollClosed, "poll closed"},
		{"no opening time", onlyClose, time.Time{}, PollOpen, ""},
		{"no window", Poll{ID: "p"}, closes.Add(time.Hour), PollOpen, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.poll.State(tt.at); got != tt.state {
				t.Errorf("State = %q, want %q", got, tt.state)
			}
			err := tt.poll.Accepts(tt.at)
			if tt.err == "" && err != nil || tt.err != "" && (ErrorCode(err) != ECONFLICT || ErrorMessage(err) != tt.err) {
				t.Errorf("Accepts = %v, want %q", err, tt.err)
			}
		})
	}
	backwards := Poll{ID: "p", Options: []string{"a", "b"}, OpensAt: &closes, ClosesAt: &opens}
	same := Poll{ID: "p", Options: []string{"a", "b"}, OpensAt: &opens, ClosesAt: &opens}
	for _, p := range []Poll{backwards, same} {
		if err := p.Validate(); ErrorCode(err) != EINVALID {
			t.Errorf("Validate(%v..%v) = %v, want invalid", p.OpensAt, p.ClosesAt, err)
		}
	}
	if err := bounded.Validate(); err != nil {
		t.Errorf("Validate(bounded) = %v", err)
	}
}
