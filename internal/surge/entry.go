package surge

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Entry kinds carried by the capture queues.
const (
	KindVote  = "vote"
	KindOrder = "order"
)

// Stream entry fields. An entry is flat: its kind and then one field per
// payload field, numbers in decimal and times in Unix microseconds (empty
// for none), so that neither side pays for JSON on the hot path and
// `XRANGE` shows entries as they are:
//
//	vote:  kind id poll choice voter version node at
//	order: kind id item quantity node at [account]  (one line, as before carts)
//	order: kind id lines node at [account]          (lines "item:quantity,…")
//
// account is the buyer's id, only if logged in.
//
// A one-line order is written in the first form, so workers of the release
// before carts still read it during a rolling update.
const (
	FieldKind     = "kind"
	FieldID       = "id"
	FieldPoll     = "poll"
	FieldChoice   = "choice"
	FieldVoter    = "voter"
	FieldVersion  = "version"
	FieldItem     = "item"
	FieldQuantity = "quantity"
	FieldLines    = "lines"
	FieldNode     = "node"
	FieldAt       = "at"
	FieldAccount  = "account" // an order's buyer, only if logged in
	// FieldData holds the whole payload as JSON in entries written by
	// releases before flat entries; workers still read them, so a rolling
	// update loses nothing that was queued.
	FieldData = "data"
)

// EncodeVote returns the stream fields of a vote entry.
func EncodeVote(v Vote) []any {
	return []any{FieldKind, KindVote, FieldID, v.ID, FieldPoll, v.Poll, FieldChoice, v.Choice, FieldVoter, v.Voter,
		FieldVersion, strconv.FormatInt(v.Version, 10), FieldNode, v.Node, FieldAt, formatMicros(v.At)}
}

// EncodeOrder returns the stream fields of an order entry.
func EncodeOrder(o Order) []any {
	var fields []any
	if len(o.Lines) == 1 {
		fields = []any{FieldKind, KindOrder, FieldID, o.ID, FieldItem, strconv.FormatInt(o.Lines[0].Item, 10),
			FieldQuantity, strconv.Itoa(o.Lines[0].Quantity), FieldNode, o.Node, FieldAt, formatMicros(o.At)}
	} else {
		fields = []any{FieldKind, KindOrder, FieldID, o.ID, FieldLines, FormatLines(o.Lines),
			FieldNode, o.Node, FieldAt, formatMicros(o.At)}
	}
	if o.Account != 0 {
		fields = append(fields, FieldAccount, strconv.FormatInt(o.Account, 10))
	}
	return fields
}

func formatMicros(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

// Entry is a decoded queue entry. Exactly one payload is set.
type Entry struct {
	StreamID string // the id Redis gave the entry in its shard's stream; each copy has its own
	Kind     string
	Vote     *Vote
	Order    *Order
}

// EventID names the event whichever copy carries it: the vote's id (a
// ULID) or the order's id. Stream ids differ between copies; this does not.
func (e Entry) EventID() string {
	switch {
	case e.Vote != nil:
		return e.Vote.ID
	case e.Order != nil:
		return e.Order.ID
	}
	return ""
}

// DecodeEntry parses the fields of a stream entry. An error means the entry
// is poison: it will never decode, however often it is retried.
func DecodeEntry(streamID string, fields map[string]any) (Entry, error) {
	e := Entry{StreamID: streamID}
	e.Kind, _ = fields[FieldKind].(string)
	if _, ok := fields[FieldData]; ok {
		return decodeJSONEntry(e, fields)
	}
	f := entryFields{m: fields}
	switch e.Kind {
	case KindVote:
		v := Vote{ID: f.str(FieldID), Poll: f.str(FieldPoll), Choice: f.str(FieldChoice), Voter: f.str(FieldVoter),
			Version: f.int(FieldVersion), Node: f.str(FieldNode), At: f.time(FieldAt)}
		if err := cmp.Or(f.err, v.Validate()); err != nil {
			return e, fmt.Errorf("decode vote entry %s: %w", streamID, err)
		}
		e.Vote = &v
	case KindOrder:
		o := Order{ID: f.str(FieldID), Node: f.str(FieldNode), At: f.time(FieldAt)}
		if _, cart := fields[FieldLines]; cart {
			var err error
			if o.Lines, err = ParseLinesPayload(f.str(FieldLines)); err != nil {
				f.fail(FieldLines)
			}
		} else {
			l := OrderLine{Item: f.int(FieldItem)}
			q := f.int(FieldQuantity)
			l.Quantity = int(q)
			if int64(l.Quantity) != q {
				f.fail(FieldQuantity)
			}
			o.Lines = []OrderLine{l}
		}
		if _, ok := fields[FieldAccount]; ok { // absent: anonymous
			o.Account = f.int(FieldAccount)
		}
		if err := cmp.Or(f.err, o.Validate()); err != nil {
			return e, fmt.Errorf("decode order entry %s: %w", streamID, err)
		}
		e.Order = &o
	default:
		return e, fmt.Errorf("decode entry %s: unknown kind %q", streamID, e.Kind)
	}
	return e, nil
}

// entryFields reads a flat entry's fields, keeping the first problem.
type entryFields struct {
	m   map[string]any
	err error
}

func (f *entryFields) fail(name string) {
	if f.err == nil {
		f.err = Errorf(EINTERNAL, "field %q is missing or malformed", name)
	}
}

func (f *entryFields) str(name string) string {
	s, ok := f.m[name].(string)
	if !ok {
		f.fail(name)
	}
	return s
}

func (f *entryFields) int(name string) int64 {
	n, err := strconv.ParseInt(f.str(name), 10, 64)
	if err != nil {
		f.fail(name)
	}
	return n
}

func (f *entryFields) time(name string) time.Time {
	s := f.str(name)
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f.fail(name)
		return time.Time{}
	}
	return time.UnixMicro(n).UTC()
}

// decodeJSONEntry reads an entry of the earlier format: {kind, data: JSON}.
func decodeJSONEntry(e Entry, fields map[string]any) (Entry, error) {
	data, _ := fields[FieldData].(string)
	var err error
	switch e.Kind {
	case KindVote:
		e.Vote, err = decodeJSON[Vote](data)
	case KindOrder:
		var legacy *jsonOrder
		if legacy, err = decodeJSON[jsonOrder](data); err == nil {
			e.Order = &legacy.Order
		}
	default:
		return e, fmt.Errorf("decode entry %s: unknown kind %q", e.StreamID, e.Kind)
	}
	if err != nil {
		return e, fmt.Errorf("decode %s entry %s: %w", e.Kind, e.StreamID, err)
	}
	return e, nil
}

func decodeJSON[T any, P interface {
	*T
	Validate() error
}](data string) (*T, error) {
	var v T
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return nil, err
	}
	if err := P(&v).Validate(); err != nil {
		return nil, err
	}
	return &v, nil
}

// jsonOrder is an order entry of the earlier JSON format: one item and its
// quantity.
type jsonOrder struct {
	Order
	Item     int64 `json:"item"`
	Quantity int   `json:"quantity"`
}

func (o *jsonOrder) Validate() error {
	if o.Lines == nil {
		o.Lines = []OrderLine{{Item: o.Item, Quantity: o.Quantity}}
	}
	return o.Order.Validate()
}
