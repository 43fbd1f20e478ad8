package loadgen

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Ledger is what the load tool knows of what it sent: for every voter
// identity the server gave out, its last acknowledged vote and the votes
// sent after it whose outcome is unknown; for every order id, whether it
// was acknowledged. The verifier compares it with what the system counted.
type Ledger struct {
	mu         sync.Mutex
	Identities map[string]*IdentityLedger // by voter id (from the voter cookie)
	// Anonymous holds votes sent without a voter cookie whose outcome is
	// unknown, by choice: if one was counted, it is under a voter id the
	// tool never saw.
	Anonymous map[string]int
	Orders    map[string]*OrderLedger
	// Stock is each item's quantity when the run created it.
	Stock map[int64]int64
}

// Ack is an acknowledged vote: the receipt is the event id that counts for
// the voter if this vote wins, and the version comes from the voter cookie
// the 202 carried.
type Ack struct {
	Choice  string `json:"choice"`
	EventID string `json:"event_id"`
	Version int64  `json:"version"`
}

// IdentityLedger is one voter id's history.
type IdentityLedger struct {
	Last *Ack // the last acknowledged vote
	// Unknown holds the choices of this voter's votes whose outcome is
	// unknown. Any of them may have been counted, even instead of the last
	// acknowledged one: a request stuck in a queue takes its version when a
	// frontend finally handles it, so it can be newer than a later vote.
	Unknown  []string
	Acks     int
	Rejected int // 4xx: definitely not counted
}

// OrderLine is one line of an order: an item and how many of it.
type OrderLine struct {
	Item     int64 `json:"item"`
	Quantity int   `json:"quantity"`
}

// linesString writes lines in item order, "item×quantity …", to compare
// and report them.
func linesString(lines []OrderLine) string {
	sorted := slices.Clone(lines)
	slices.SortFunc(sorted, func(a, b OrderLine) int { return cmp.Compare(a.Item, b.Item) })
	parts := make([]string, len(sorted))
	for i, l := range sorted {
		parts[i] = fmt.Sprintf("%d×%d", l.Item, l.Quantity)
	}
	return strings.Join(parts, " ")
}

// OrderLedger is one order id's history. An order id may be sent more than
// once (a repeat); it must take effect at most once. Lines are what it
// asked for: one line, or a cart.
type OrderLedger struct {
	Lines    []OrderLine
	Acks     int
	Unknown  int
	Rejected int
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{Identities: map[string]*IdentityLedger{}, Anonymous: map[string]int{},
		Orders: map[string]*OrderLedger{}, Stock: map[int64]int64{}}
}

func (l *Ledger) identity(id string) *IdentityLedger {
	il := l.Identities[id]
	if il == nil {
		il = &IdentityLedger{}
		l.Identities[id] = il
	}
	return il
}

// VoteAcked records a 202. sentAs is the voter id the request carried
// ("" without a cookie); cookie is the voter cookie the answer set. A 202
// without a readable cookie (not surge's contract) is kept under the old
// id, or else under the tool's own name for the voter, local.
func (l *Ledger) VoteAcked(sentAs, local, choice, eventID, cookie string) {
	id, version, ok := ParseVoterCookie(cookie)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok {
		id = cmp.Or(sentAs, local)
	}
	il := l.identity(id)
	il.Acks++
	il.Last = &Ack{Choice: choice, EventID: eventID, Version: version}
}

// VoteUnknown records a vote that got no answer or a 5xx.
func (l *Ledger) VoteUnknown(sentAs, choice string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sentAs == "" {
		l.Anonymous[choice]++
		return
	}
	il := l.identity(sentAs)
	il.Unknown = append(il.Unknown, choice)
}

// VoteRejected records a 4xx: the vote was refused and is never counted.
func (l *Ledger) VoteRejected(sentAs string) {
	if sentAs == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.identity(sentAs).Rejected++
}

// OrderSent records the outcome of one order request.
func (l *Ledger) OrderSent(id string, lines []OrderLine, o Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ol := l.Orders[id]
	if ol == nil {
		ol = &OrderLedger{Lines: lines}
		l.Orders[id] = ol
	}
	switch {
	case o.OK():
		ol.Acks++
	case o.Unknown():
		ol.Unknown++
	default:
		ol.Rejected++
	}
}

// Counts are the ledger's totals, for the report.
type Counts struct {
	Voters        int `json:"voter_ids"`
	VotesAcked    int `json:"votes_acked"`
	VotesUnknown  int `json:"votes_unknown"`
	VotesRejected int `json:"votes_rejected"`
	Orders        int `json:"order_ids"`
	OrdersAcked   int `json:"orders_acked"`
	OrdersUnknown int `json:"orders_unknown"`
}

// Counts sums the ledger.
func (l *Ledger) Counts() Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	var c Counts
	for _, il := range l.Identities {
		c.Voters++
		c.VotesAcked += il.Acks
		c.VotesUnknown += len(il.Unknown)
		c.VotesRejected += il.Rejected
	}
	for _, n := range l.Anonymous {
		c.VotesUnknown += n
	}
	for _, ol := range l.Orders {
		c.Orders++
		if ol.Acks > 0 {
			c.OrdersAcked++
		} else if ol.Unknown > 0 {
			c.OrdersUnknown++
		}
	}
	return c
}

// ParseVoterCookie reads the voter id and version from a voter cookie,
// v1.<voter id>.<version>.<signature>, without checking the signature
// (the tool does not have the key; the server checks it).
func ParseVoterCookie(value string) (id string, version int64, ok bool) {
	parts := strings.Split(value, ".")
	if len(parts) != 4 || parts[0] != "v1" || parts[1] == "" {
		return "", 0, false
	}
	v, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || v < 0 {
		return "", 0, false
	}
	return parts[1], v, true
}
