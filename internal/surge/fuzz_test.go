package surge

import (
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// referencePrice is the README's price grammar written out by hand: a whole
// part without leading zeros, at most two decimals, from 0 to 1,000,000.
func referencePrice(s string) (Cents, bool) {
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(s string) bool { return strings.Trim(s, "0123456789") == "" }
	switch {
	case whole == "" || !digits(whole) || !digits(frac):
		return 0, false
	case len(whole) > 1 && whole[0] == '0':
		return 0, false
	case dot && (len(frac) == 0 || len(frac) > 2):
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() || r.Num().Cmp(big.NewInt(MaxPriceCents)) > 0 {
		return 0, false
	}
	return Cents(r.Num().Int64()), true
}

// FuzzParsePrice: ParsePrice accepts exactly the README's grammar, gives the
// exact amount, and what it accepts round-trips through Cents.String.
func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{
		"0", "0.0", "0.00", "0.01", "0.5", "12.5", "12.50", "999999.99", "1000000", "1000000.0", "1000000.00",
		"1000000.01", "1000001", "9999999.99", "99999999", "01", "00", "-0", "-1", "+1", "1e3", "1E3", "1.234",
		"1.", ".5", "", " 1", "1 ", "1,5", "0x10", "١٢", "12.5\n", "1_000", "NaN", "Inf",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParsePrice(s)
		want, ok := referencePrice(s)
		if err != nil {
			if ok {
				t.Fatalf("ParsePrice(%q) = %v; want %d cents", s, err, want)
			}
			if c != 0 {
				t.Fatalf("ParsePrice(%q) = %d with error %v; want 0", s, c, err)
			}
			return
		}
		if !ok {
			t.Fatalf("ParsePrice(%q) = %d; want an error", s, c)
		}
		if c != want || c < 0 || c > MaxPriceCents {
			t.Fatalf("ParsePrice(%q) = %d; want %d", s, c, want)
		}
		back, err := ParsePrice(c.String())
		if err != nil || back != c {
			t.Fatalf("ParsePrice(%q) = %d, String %q, parsed back as %d, %v", s, c, c.String(), back, err)
		}
		whole, frac, _ := strings.Cut(s, ".")
		if canonical := whole + "." + (frac + "00")[:2]; c.String() != canonical {
			t.Fatalf("ParsePrice(%q).String() = %q; want %q", s, c.String(), canonical)
		}
		var viaJSON Cents
		if b, err := json.Marshal(c); err != nil || json.Unmarshal(b, &viaJSON) != nil || viaJSON != c {
			t.Fatalf("%d does not round-trip through JSON (%s, %v): got %d", c, b, err, viaJSON)
		}
	})
}

// FuzzParseItemInput: every field is judged on its own (README: a name of
// 1-100 printable characters, a whole quantity from 0 to 1,000,000, an
// optional price), each bad field gets its own message, and what is accepted
// is exactly what was given, normalised.
func FuzzParseItemInput(f *testing.F) {
	f.Add("Mug", "3", "12.50", true)
	f.Add("  mUG ", "0", "", true)
	f.Add("Cap", "1000000", "", false)
	f.Add("", "-1", "x", true)
	f.Add("bad\abell", "1.5", "1.234", true)
	f.Add(strings.Repeat("é", 100), "+5", "1000000", true)
	f.Add(strings.Repeat("x", 101), "1000001", "1000000.01", true)
	f.Add("c\xffat", "99999999999999999999", "01", true)
	f.Add("\u00a0a\u00a0", "-0", "0", true)
	f.Add("\u2028", "1e3", "1e3", true)
	f.Add("tab\tname", "", "0.00", true)
	f.Fuzz(func(t *testing.T, name, quantity, price string, hasPrice bool) {
		var pp *string
		if hasPrice {
			pp = &price
		}
		in, err := ParseItemInput(name, json.Number(quantity), pp)

		trimmed := strings.TrimSpace(name)
		nameOK := utf8.ValidString(name) && utf8.RuneCountInString(trimmed) >= 1 &&
			utf8.RuneCountInString(trimmed) <= MaxNameLength && strings.IndexFunc(trimmed, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
		q, qOK := new(big.Int).SetString(quantity, 10)
		qOK = qOK && q.Sign() >= 0 && q.Cmp(big.NewInt(MaxItemQuantity)) <= 0
		wantPrice, priceOK := referencePrice(price)
		priceGiven := hasPrice && price != ""
		priceOK = priceOK || !priceGiven
		want := map[string]bool{"name": !nameOK, "quantity": !qOK, "price": !priceOK}

		if err != nil {
			var se *Error
			if !errors.As(err, &se) || se.Code != EINVALID || se.Message != "invalid item" {
				t.Fatalf("ParseItemInput(%q, %q, %q) error %#v; want an EINVALID \"invalid item\"", name, quantity, price, err)
			}
			if in != (ItemInput{}) {
				t.Fatalf("ParseItemInput returned %+v with its error", in)
			}
			if len(se.Fields) == 0 {
				t.Fatalf("ParseItemInput(%q, %q, %q): error without field messages", name, quantity, price)
			}
			for field, msg := range se.Fields {
				if !want[field] || msg == "" {
					t.Fatalf("ParseItemInput(%q, %q, %q): field %q = %q; want messages for %v", name, quantity, price, field, msg, want)
				}
			}
			for field, bad := range want {
				if _, got := se.Fields[field]; bad && !got {
					t.Fatalf("ParseItemInput(%q, %q, %q): no message for bad field %q (got %v)", name, quantity, price, field, se.Fields)
				}
			}
			return
		}
		if want["name"] || want["quantity"] || want["price"] {
			t.Fatalf("ParseItemInput(%q, %q, %q, %v) = %+v; want errors for %v", name, quantity, price, hasPrice, in, want)
		}
		if in.Name != trimmed || in.Quantity != q.Int64() {
			t.Fatalf("ParseItemInput(%q, %q) = %q, %d; want %q, %s", name, quantity, in.Name, in.Quantity, trimmed, q)
		}
		switch {
		case !priceGiven && in.Price != nil:
			t.Fatalf("no price given, got %d", *in.Price)
		case priceGiven && (in.Price == nil || *in.Price != wantPrice):
			t.Fatalf("price %q parsed as %v; want %d", price, in.Price, wantPrice)
		}
		// Normalising is idempotent and keeps the item's identity.
		again, err := ParseItemInput(in.Name, json.Number(quantity), pp)
		if err != nil || again.Name != in.Name || ItemKey(in.Name) != ItemKey(name) {
			t.Fatalf("normalised name %q does not parse to itself: %+v, %v", in.Name, again, err)
		}
	})
}

// FuzzDecodeEntry, for entries in the earlier JSON format: whatever a
// stream holds, DecodeEntry never panics; a poison entry carries no payload
// and names its stream id; an accepted entry validates and survives
// encoding (flat) and decoding again, its time to the microsecond.
func FuzzDecodeEntry(f *testing.F) {
	vote, _ := json.Marshal(validVote())
	f.Add("1-0", KindVote, string(vote), uint8(0))
	f.Add("1-1", KindOrder, `{"id":"k-1","item":7,"quantity":2,"node":"web-1","at":"2026-01-02T03:04:05.123456789Z"}`, uint8(0))
	f.Add("2-0", KindOrder, `{"id":"k-1","item":7,"quantity":2,"at":"2026-01-02T03:04:05+23:59"}`, uint8(0))
	f.Add("3-0", KindVote, `{"id":"x","poll":"p","choice":"c","voter":"v","version":1}`, uint8(0))
	f.Add("3-1", KindVote, `{"id":"x","poll":"p","choice":"c","voter":"v","version":1,"ID":"y","Version":2}`, uint8(0))
	f.Add("4-0", KindVote, `{"id":"x","poll":"p","choice":"c","voter":"v","version":1e3}`, uint8(0))
	f.Add("4-1", KindVote, `null`, uint8(0))
	f.Add("5-0", KindOrder, `{"id":"a b","item":-1,"quantity":101}`, uint8(0))
	f.Add("5-1", KindOrder, `{"id":"k","lines":[{"item":1,"quantity":2},{"item":7,"quantity":1}]}`, uint8(0))
	f.Add("5-2", KindOrder, `{"id":"k","lines":[{"item":1,"quantity":2},{"item":1,"quantity":1}]}`, uint8(0))
	f.Add("5-3", KindOrder, `{"id":"k","lines":[]}`, uint8(0))
	f.Add("6-0", "poll", string(vote), uint8(0))
	f.Add("7-0", KindVote, string(vote), uint8(1))
	f.Add("7-1", KindVote, string(vote), uint8(2))
	f.Add("7-2", KindVote, string(vote), uint8(4))
	f.Add("7-3", KindVote, string(vote), uint8(8))
	f.Fuzz(func(t *testing.T, streamID, kind, data string, shape uint8) {
		// shape varies what a stream could hold: missing fields, a []byte
		// payload, a kind that is not a string.
		fields := map[string]any{FieldKind: kind, FieldData: data}
		if shape&1 != 0 {
			delete(fields, FieldKind)
		}
		if shape&2 != 0 {
			delete(fields, FieldData)
		}
		if shape&4 != 0 {
			fields[FieldData] = []byte(data)
		}
		if shape&8 != 0 {
			fields[FieldKind] = len(kind)
		}
		e, ok := decodeOrPoison(t, streamID, fields)
		if !ok {
			return
		}
		if e.Kind != kind || shape&(1|8) != 0 {
			t.Fatalf("accepted entry of kind %q (shape %d) as %q", kind, shape, e.Kind)
		}
		checkPayload(t, e)
	})
}

// FuzzDecodeFlatEntry: the same promises for flat entries, whose fields
// arrive one by one (drop removes some; Redis returns strings).
func FuzzDecodeFlatEntry(f *testing.F) {
	f.Add("1-0", KindVote, "01HZZZZZZZZZZZZZZZZZZZZZZZ", "cats-vs-dogs", "cats", "v1", "1700000000000000", "", "web-1", "1767323045123456", uint16(0), "")
	f.Add("1-1", KindOrder, "k-1", "", "", "", "", "7", "web-1", "", uint16(0), "")
	f.Add("1-1", KindOrder, "k-1", "", "", "", "3", "7", "web-1", "-62135596800000000", uint16(0), "")
	f.Add("2-0", KindVote, "x", "p", "c", "v", "+1", "", "", "0", uint16(0), "")
	f.Add("2-1", KindVote, "x", "p", "c", "v", "1", "", "", "1e3", uint16(0), "")
	f.Add("2-2", KindOrder, "k", "", "", "", "4294967297", "1", "", "", uint16(0), "")
	f.Add("3-0", KindVote, "x", "p", "c", "v", "9223372036854775808", "", "", "", uint16(0), "")
	f.Add("3-1", KindVote, "x", "p", "c", "v", "1", "", "", "", uint16(1<<3), "")
	f.Add("4-0", KindOrder, "k", "", "", "", "", "", "web-1", "", uint16(0), "1:2,7:1")
	f.Add("4-1", KindOrder, "k", "", "", "", "", "", "web-1", "", uint16(0), "7:1,1:2,3:100")
	f.Add("4-2", KindOrder, "k", "", "", "", "", "", "", "", uint16(0), "1:2,1:1")
	f.Add("4-3", KindOrder, "k", "", "", "", "", "", "", "", uint16(0), "1:0")
	f.Add("4-4", KindOrder, "k", "", "", "", "", "", "", "", uint16(0), "1:1,")
	f.Add("4-5", KindOrder, "k", "", "", "", "", "", "", "", uint16(0), "1:+1,2:01")
	f.Fuzz(func(t *testing.T, streamID, kind, id, poll, choice, voter, number, item, node, at string, drop uint16, lines string) {
		// number is the vote's version or the order's quantity; lines, when
		// not empty, makes an order a cart.
		fields := map[string]any{FieldKind: kind, FieldID: id, FieldPoll: poll, FieldChoice: choice, FieldVoter: voter,
			FieldVersion: number, FieldQuantity: number, FieldItem: item, FieldNode: node, FieldAt: at}
		if lines != "" {
			fields[FieldLines] = lines
		}
		names := []string{FieldKind, FieldID, FieldPoll, FieldChoice, FieldVoter, FieldVersion, FieldQuantity, FieldItem, FieldNode, FieldAt}
		for i, name := range names {
			if drop&(1<<i) != 0 {
				delete(fields, name)
			}
		}
		if drop&(1<<len(names)) != 0 {
			fields[FieldAt] = []byte(at) // not what Redis returns
		}
		e, ok := decodeOrPoison(t, streamID, fields)
		if !ok {
			return
		}
		if e.Kind != kind {
			t.Fatalf("accepted entry of kind %q as %q", kind, e.Kind)
		}
		checkPayload(t, e)
		// A flat entry's fields are kept exactly, the time to the microsecond.
		switch {
		case e.Vote != nil && (e.Vote.ID != id || e.Vote.Poll != poll || e.Vote.Choice != choice || e.Vote.Voter != voter || e.Vote.Node != node):
			t.Fatalf("vote %+v does not hold the fields %q", *e.Vote, fields)
		case e.Order != nil && (e.Order.ID != id || e.Order.Node != node):
			t.Fatalf("order %+v does not hold the fields %q", *e.Order, fields)
		}
	})
}

// decodeOrPoison decodes fields and checks the promises of a poison entry:
// it carries no payload and its error names the stream id.
func decodeOrPoison(t *testing.T, streamID string, fields map[string]any) (Entry, bool) {
	t.Helper()
	e, err := DecodeEntry(streamID, fields)
	if e.StreamID != streamID {
		t.Fatalf("StreamID = %q; want %q", e.StreamID, streamID)
	}
	if err != nil {
		if e.Vote != nil || e.Order != nil {
			t.Fatalf("poison entry (%v) carries a payload: %+v", err, e)
		}
		if !strings.Contains(err.Error(), streamID) {
			t.Fatalf("error %q does not name the stream id %q", err, streamID)
		}
		return e, false
	}
	return e, true
}

// checkPayload checks an accepted entry's payload with checkRoundTrip.
func checkPayload(t *testing.T, e Entry) {
	t.Helper()
	switch e.Kind {
	case KindVote:
		checkRoundTrip(t, e.StreamID, e.Vote, e.Order == nil, EncodeVote,
			func(e Entry) *Vote { return e.Vote }, func(v *Vote) *time.Time { return &v.At })
	case KindOrder:
		checkRoundTrip(t, e.StreamID, e.Order, e.Vote == nil, EncodeOrder,
			func(e Entry) *Order { return e.Order }, func(o *Order) *time.Time { return &o.At })
	default:
		t.Fatalf("accepted an entry of unknown kind %q", e.Kind)
	}
}

// checkRoundTrip checks the payload of an accepted entry: it is the only
// one, it validates, and it is encoded and decoded back to itself (its time
// to the same microsecond: a flat entry keeps no more).
func checkRoundTrip[T interface {
	Validate() error
}](t *testing.T, streamID string, got *T, only bool, encode func(T) []any, payload func(Entry) *T, at func(*T) *time.Time) {
	t.Helper()
	if got == nil || !only {
		t.Fatalf("accepted entry without exactly one payload: %+v", got)
	}
	if err := (*got).Validate(); err != nil {
		t.Fatalf("accepted a payload that does not validate: %+v: %v", *got, err)
	}
	e, err := DecodeEntry(streamID, fieldsOf(t, encode(*got)))
	if err != nil || payload(e) == nil {
		t.Fatalf("re-encoded payload %+v is poison: %v", *got, err)
	}
	a, b := *got, *payload(e)
	if !at(&a).Truncate(time.Microsecond).Equal(*at(&b)) {
		t.Fatalf("time changed in a round trip: %v -> %v", *at(&a), *at(&b))
	}
	*at(&a) = *at(&b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("payload changed in a round trip: %+v -> %+v", a, b)
	}
}
