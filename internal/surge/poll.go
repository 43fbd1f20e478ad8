package surge

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultPollID is the poll a vote goes to when it names none.
const DefaultPollID = "cats-vs-dogs"

// Poll is a question with a fixed set of options, open for votes from
// OpensAt (if set) until ClosesAt (if set).
type Poll struct {
	ID      string   `json:"id" mapstructure:"id"`
	Title   string   `json:"title" mapstructure:"title"`
	Options []string `json:"options" mapstructure:"options"`
	// OpensAt and ClosesAt bound when a vote may be cast; nil is no bound.
	// The time a vote was captured decides, never the time it is counted.
	OpensAt  *time.Time `json:"opens_at,omitempty" mapstructure:"opens_at"`
	ClosesAt *time.Time `json:"closes_at,omitempty" mapstructure:"closes_at"`
	// AccountsOnly polls take votes from logged-in accounts only, one
	// vote per account (voter AccountVoter(id)), whatever cookies the
	// browser holds.
	AccountsOnly bool `json:"accounts_only,omitempty" mapstructure:"accounts_only"`
}

// AccountVoter is the voter id of an account in accounts-only polls.
func AccountVoter(account int64) string { return "acct-" + strconv.FormatInt(account, 10) }

// Poll states, as Poll.State reports them.
const (
	PollScheduled = "scheduled" // not open yet
	PollOpen      = "open"
	PollClosed    = "closed" // its tally is final
)

// State is the poll's state at t.
func (p Poll) State(t time.Time) string {
	switch {
	case p.OpensAt != nil && t.Before(*p.OpensAt):
		return PollScheduled
	case p.ClosesAt != nil && !t.Before(*p.ClosesAt):
		return PollClosed
	}
	return PollOpen
}

// Accepts refuses a vote cast at t outside the poll's window.
func (p Poll) Accepts(t time.Time) error {
	switch p.State(t) {
	case PollScheduled:
		return Errorf(ECONFLICT, "poll not open yet")
	case PollClosed:
		return Errorf(ECONFLICT, "poll closed")
	}
	return nil
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidSlug reports whether s is usable as a poll id or option.
func ValidSlug(s string) bool { return slugPattern.MatchString(s) }

// Validate checks the poll's shape: a slug id and 2 to 10 distinct slug options.
func (p Poll) Validate() error {
	if !ValidSlug(p.ID) {
		return Errorf(EINVALID, "poll id %q must be 1-63 lowercase letters, digits or dashes", p.ID)
	}
	if n := utf8.RuneCountInString(p.Title); !utf8.ValidString(p.Title) || n > 200 ||
		strings.IndexFunc(p.Title, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return Errorf(EINVALID, "poll %q: the title must be at most 200 printable characters", p.ID)
	}
	if len(p.Options) < 2 || len(p.Options) > 10 {
		return Errorf(EINVALID, "poll %q must have 2 to 10 options, has %d", p.ID, len(p.Options))
	}
	if p.OpensAt != nil && p.ClosesAt != nil && !p.OpensAt.Before(*p.ClosesAt) {
		return &Error{Code: EINVALID, Message: fmt.Sprintf("poll %q must close after it opens", p.ID),
			Fields: map[string]string{"closes_at": "must be after opens_at"}}
	}
	seen := make(map[string]bool, len(p.Options))
	for _, o := range p.Options {
		if !ValidSlug(o) {
			return Errorf(EINVALID, "poll %q: option %q must be 1-63 lowercase letters, digits or dashes", p.ID, o)
		}
		if seen[o] {
			return Errorf(EINVALID, "poll %q: option %q appears twice", p.ID, o)
		}
		seen[o] = true
	}
	return nil
}

// HasOption reports whether choice is one of the poll's options.
func (p Poll) HasOption(choice string) bool { return slices.Contains(p.Options, choice) }

// DefaultPolls is the built-in poll set used when config names none.
func DefaultPolls() []Poll {
	return []Poll{{ID: DefaultPollID, Title: "Cats or dogs?", Options: []string{"cats", "dogs"}}}
}

// Results are the counts of one poll. Every option is present, zero included.
type Results struct {
	Poll   string           `json:"poll"`
	Counts map[string]int64 `json:"counts"`
	Total  int64            `json:"total"`
	// Seq counts the commits that changed the counts: results at Seq include
	// every vote committed by the first Seq of them.
	Seq int64 `json:"seq"`
	// UpdatedAt is when a commit last changed the counts (the poll's
	// creation until one does).
	UpdatedAt time.Time `json:"updated_at"`
}

// UTC returns the poll with its window in UTC, as it is shown.
func (p Poll) UTC() Poll {
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC()
		return &u
	}
	p.OpensAt, p.ClosesAt = utc(p.OpensAt), utc(p.ClosesAt)
	return p
}
