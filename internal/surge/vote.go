package surge

import "time"

// Vote is one captured vote as it travels through a queue.
//
// Which vote of a voter counts is decided by (Version, ID): the greater pair
// wins. Version comes from the voter's signed cookie (see NextVersion), so a
// vote cast after another one's acknowledgement always wins, whatever the
// clocks of the frontends or the order in which shards are drained.
type Vote struct {
	ID      string    `json:"id"`      // event id, unique (ULID); also the receipt
	Poll    string    `json:"poll"`    // poll id
	Choice  string    `json:"choice"`  // one of the poll's options
	Voter   string    `json:"voter"`   // voter id from the signed cookie
	Version int64     `json:"version"` // voter clock, microseconds (hybrid logical clock)
	Node    string    `json:"node"`    // hostname of the frontend that took it
	At      time.Time `json:"at"`      // capture time, informational
}

// Validate checks that the vote is well formed. It does not check the poll.
func (v Vote) Validate() error {
	switch {
	case v.ID == "" || len(v.ID) > 64:
		return Errorf(EINVALID, "vote id must be 1-64 bytes")
	case !ValidSlug(v.Poll):
		return Errorf(EINVALID, "invalid poll id %q", v.Poll)
	case !ValidSlug(v.Choice):
		return Errorf(EINVALID, "invalid choice %q", v.Choice)
	case v.Voter == "" || len(v.Voter) > 64:
		return Errorf(EINVALID, "voter id must be 1-64 bytes")
	case v.Version <= 0:
		return Errorf(EINVALID, "version must be positive")
	}
	return nil
}

// Wins reports whether v supersedes a stored vote with the given version and id.
func (v Vote) Wins(version int64, id string) bool {
	if v.Version != version {
		return v.Version > version
	}
	return v.ID > id
}

// NextVersion is the voter clock: max(now in microseconds, previous+1).
// It only moves forward for a voter who presents the cookie of their last
// vote, even if the next frontend's clock is behind.
func NextVersion(now time.Time, previous int64) int64 {
	return max(now.UnixMicro(), previous+1)
}
