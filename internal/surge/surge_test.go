package surge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNextVersion(t *testing.T) {
	now := time.UnixMicro(1_700_000_000_000_000)
	tests := []struct {
		name     string
		previous int64
		want     int64
	}{
		{"first vote (no previous)", 0, 1_700_000_000_000_000},
		{"clock ahead of previous", 1_600_000_000_000_000, 1_700_000_000_000_000},
		{"clock behind previous", 1_800_000_000_000_000, 1_800_000_000_000_001},
		{"clock equal to previous", 1_700_000_000_000_000, 1_700_000_000_000_001},
		{"clock one ahead of previous", 1_699_999_999_999_999, 1_700_000_000_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextVersion(now, tt.previous); got != tt.want {
				t.Fatalf("NextVersion(%d, %d) = %d, want %d", now.UnixMicro(), tt.previous, got, tt.want)
			}
		})
	}
}

func TestNextVersionSubMicrosecondIgnored(t *testing.T) {
	now := time.UnixMicro(42).Add(999 * time.Nanosecond)
	if got := NextVersion(now, 0); got != 42 {
		t.Fatalf("NextVersion = %d, want 42 (nanoseconds truncated)", got)
	}
}

func TestVoteWins(t *testing.T) {
	tests := []struct {
		name    string
		vote    Vote
		version int64
		id      string
		want    bool
	}{
		{"greater version", Vote{ID: "a", Version: 2}, 1, "z", true},
		{"smaller version", Vote{ID: "z", Version: 1}, 2, "a", false},
		{"equal version, greater id", Vote{ID: "b", Version: 5}, 5, "a", true},
		{"equal version, smaller id", Vote{ID: "a", Version: 5}, 5, "b", false},
		{"equal version and id", Vote{ID: "a", Version: 5}, 5, "a", false},
		{"against nothing stored", Vote{ID: "a", Version: 1}, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.vote.Wins(tt.version, tt.id); got != tt.want {
				t.Fatalf("Vote{ID:%q, Version:%d}.Wins(%d, %q) = %v, want %v",
					tt.vote.ID, tt.vote.Version, tt.version, tt.id, got, tt.want)
			}
		})
	}
}

func validVote() Vote {
	return Vote{
		ID:      "01HZZZZZZZZZZZZZZZZZZZZZZZ",
		Poll:    "cats-vs-dogs",
		Choice:  "cats",
		Voter:   "0123456789abcdef0123456789abcdef",
		Version: 1_700_000_000_000_000,
		Node:    "web-1",
		At:      time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC),
	}
}

func TestVoteValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Vote)
		ok     bool
	}{
		{"valid", func(*Vote) {}, true},
		{"node and time are optional", func(v *Vote) { v.Node = ""; v.At = time.Time{} }, true},
		{"id 64 bytes", func(v *Vote) { v.ID = strings.Repeat("a", 64) }, true},
		{"voter 64 bytes", func(v *Vote) { v.Voter = strings.Repeat("a", 64) }, true},
		{"version 1", func(v *Vote) { v.Version = 1 }, true},
		{"empty id", func(v *Vote) { v.ID = "" }, false},
		{"id 65 bytes", func(v *Vote) { v.ID = strings.Repeat("a", 65) }, false},
		{"empty poll", func(v *Vote) { v.Poll = "" }, false},
		{"poll with uppercase", func(v *Vote) { v.Poll = "Cats" }, false},
		{"poll starting with dash", func(v *Vote) { v.Poll = "-cats" }, false},
		{"poll 64 chars", func(v *Vote) { v.Poll = strings.Repeat("a", 64) }, false},
		{"empty choice", func(v *Vote) { v.Choice = "" }, false},
		{"choice with space", func(v *Vote) { v.Choice = "big cats" }, false},
		{"choice with unicode", func(v *Vote) { v.Choice = "chàts" }, false},
		{"empty voter", func(v *Vote) { v.Voter = "" }, false},
		{"voter 65 bytes", func(v *Vote) { v.Voter = strings.Repeat("a", 65) }, false},
		{"zero version", func(v *Vote) { v.Version = 0 }, false},
		{"negative version", func(v *Vote) { v.Version = -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := validVote()
			tt.mutate(&v)
			checkValidate(t, v.Validate(), tt.ok)
		})
	}
}

// checkValidate checks a Validate result: nil when ok, else an EINVALID.
func checkValidate(t *testing.T, err error, ok bool) {
	t.Helper()
	switch {
	case ok && err != nil:
		t.Fatalf("Validate() = %v, want nil", err)
	case !ok && err == nil:
		t.Fatalf("Validate() = nil, want an error")
	case !ok && ErrorCode(err) != EINVALID:
		t.Fatalf("ErrorCode(%v) = %q, want %q", err, ErrorCode(err), EINVALID)
	}
}

func TestPollValidate(t *testing.T) {
	opts := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("opt-%d", i)
		}
		return out
	}
	tests := []struct {
		name string
		poll Poll
		ok   bool
	}{
		{"good", Poll{ID: "cats-vs-dogs", Title: "Cats or dogs?", Options: []string{"cats", "dogs"}}, true},
		{"default polls", DefaultPolls()[0], true},
		{"ten options", Poll{ID: "p", Options: opts(10)}, true},
		{"id 63 chars", Poll{ID: strings.Repeat("a", 63), Options: opts(2)}, true},
		{"bad slug: uppercase", Poll{ID: "Cats", Options: opts(2)}, false},
		{"bad slug: empty", Poll{ID: "", Options: opts(2)}, false},
		{"bad slug: underscore", Poll{ID: "cats_dogs", Options: opts(2)}, false},
		{"bad slug: 64 chars", Poll{ID: strings.Repeat("a", 64), Options: opts(2)}, false},
		{"bad slug: trailing newline", Poll{ID: "cats\n", Options: opts(2)}, false},
		{"no options", Poll{ID: "p"}, false},
		{"one option", Poll{ID: "p", Options: opts(1)}, false},
		{"eleven options", Poll{ID: "p", Options: opts(11)}, false},
		{"duplicate option", Poll{ID: "p", Options: []string{"cats", "dogs", "cats"}}, false},
		{"bad option slug", Poll{ID: "p", Options: []string{"cats", "Dogs"}}, false},
		{"empty option", Poll{ID: "p", Options: []string{"cats", ""}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidate(t, tt.poll.Validate(), tt.ok)
		})
	}
}

func TestPollHasOption(t *testing.T) {
	p := Poll{ID: "p", Options: []string{"cats", "dogs"}}
	for choice, want := range map[string]bool{"cats": true, "dogs": true, "birds": false, "": false, "Cats": false} {
		if got := p.HasOption(choice); got != want {
			t.Errorf("HasOption(%q) = %v, want %v", choice, got, want)
		}
	}
}

// fieldsOf turns the XADD arguments of EncodeVote into the map a Redis read
// returns: every value is a string.
func fieldsOf(t *testing.T, args []any) map[string]any {
	t.Helper()
	if len(args)%2 != 0 {
		t.Fatalf("odd number of stream fields: %v", args)
	}
	m := make(map[string]any, len(args)/2)
	for i := 0; i < len(args); i += 2 {
		k, ok := args[i].(string)
		if !ok {
			t.Fatalf("field name %v is %T, want string", args[i], args[i])
		}
		switch v := args[i+1].(type) {
		case string:
			m[k] = v
		case []byte:
			m[k] = string(v)
		default:
			t.Fatalf("field %s value is %T", k, v)
		}
	}
	return m
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	nanos := validVote()
	nanos.At = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	old := validVote()
	old.At = time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)
	tests := []struct {
		name   string
		vote   Vote
		wantAt time.Time // the flat entry keeps microseconds, in UTC
	}{
		{"full vote", validVote(), validVote().At},
		{"no node, zero time", Vote{ID: "x", Poll: "p", Choice: "c", Voter: "v", Version: 1}, time.Time{}},
		{"max version", Vote{ID: strings.Repeat("z", 64), Poll: "p", Choice: "c", Voter: "v", Version: 1<<63 - 1}, time.Time{}},
		{"node with quotes and unicode", Vote{ID: "x", Poll: "p", Choice: "c", Voter: "v", Version: 9, Node: `host "ñ" <&>`}, time.Time{}},
		{"nanoseconds and a zone", nanos, time.Date(2024, 5, 6, 6, 8, 9, 123456000, time.UTC)},
		{"a microsecond after the zero time", old, old.At},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := fieldsOf(t, EncodeVote(tt.vote))
			if fields[FieldKind] != KindVote {
				t.Fatalf("kind = %v, want %q", fields[FieldKind], KindVote)
			}
			e, err := DecodeEntry("1-0", fields)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if e.StreamID != "1-0" || e.Kind != KindVote || e.Vote == nil || e.Order != nil {
				t.Fatalf("entry = %+v, want stream id 1-0, kind vote and a vote", e)
			}
			got, want := *e.Vote, tt.vote
			want.At = tt.wantAt
			if got != want {
				t.Fatalf("vote = %+v, want %+v", got, want)
			}
		})
	}
}

func TestEncodeDecodeOrder(t *testing.T) {
	at := time.UnixMicro(1_767_323_045_123_456).UTC()
	twenty := make([]OrderLine, MaxOrderLines)
	for i := range twenty {
		twenty[i] = OrderLine{Item: int64(100 - i), Quantity: i + 1}
	}
	for _, tt := range []struct {
		name  string
		lines []OrderLine
		flat  []string // the stream fields that carry the lines
	}{
		// One line is written as before carts, so an older worker reads it.
		{"one line", []OrderLine{{Item: 1<<63 - 1, Quantity: MaxOrderQuantity}}, []string{FieldItem, FieldQuantity}},
		{"a cart", []OrderLine{{Item: 7, Quantity: 1}, {Item: 1, Quantity: 2}}, []string{FieldLines}},
		{"twenty lines", twenty, []string{FieldLines}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := Order{ID: "k-1", Lines: tt.lines, Node: "web-2", At: at}
			fields := fieldsOf(t, EncodeOrder(o))
			for _, f := range tt.flat {
				if _, ok := fields[f]; !ok {
					t.Fatalf("entry %v has no field %q", fields, f)
				}
			}
			e, err := DecodeEntry("2-0", fields)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if e.Kind != KindOrder || e.Order == nil || e.Vote != nil || e.Order.ID != o.ID || e.Order.Node != o.Node || !e.Order.At.Equal(at) {
				t.Fatalf("entry = %+v (order %+v), want order %+v", e, e.Order, o)
			}
			if LinesPayload(e.Order.Lines) != o.Payload() {
				t.Fatalf("lines %v decoded as %v", o.Lines, e.Order.Lines)
			}
		})
	}
}

// An order entry of the JSON format, one item and its quantity, decodes as
// a one-line order.
func TestDecodeJSONOrderEntry(t *testing.T) {
	e, err := DecodeEntry("3-1", map[string]any{FieldKind: KindOrder, FieldData: `{"id":"k-1","item":7,"quantity":2,"node":"web-1"}`})
	if err != nil {
		t.Fatalf("DecodeEntry: %v", err)
	}
	if e.Order == nil || e.Order.ID != "k-1" || e.Order.Payload() != "7:2" || e.Order.Node != "web-1" {
		t.Fatalf("order = %+v", e.Order)
	}
}

// An entry an earlier release queued (JSON in "data") still decodes.
func TestDecodeJSONEntry(t *testing.T) {
	data, err := json.Marshal(validVote())
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeEntry("3-0", map[string]any{FieldKind: KindVote, FieldData: string(data)})
	if err != nil {
		t.Fatalf("DecodeEntry: %v", err)
	}
	if e.Vote == nil || *e.Vote != validVote() {
		t.Fatalf("vote = %+v, want %+v", e.Vote, validVote())
	}
}

func TestDecodeEntryPoison(t *testing.T) {
	good, err := json.Marshal(validVote())
	if err != nil {
		t.Fatal(err)
	}
	goodData := string(good)
	invalid := validVote()
	invalid.Version = 0
	invalidJSON, err := json.Marshal(invalid)
	if err != nil {
		t.Fatal(err)
	}
	invalidData := string(invalidJSON)
	flat := func(change func(map[string]any)) map[string]any {
		m := fieldsOf(t, EncodeVote(validVote()))
		change(m)
		return m
	}
	order := func(change func(map[string]any)) map[string]any {
		m := fieldsOf(t, EncodeOrder(Order{ID: "k", Lines: []OrderLine{{Item: 1, Quantity: 1}}}))
		change(m)
		return m
	}
	cart := func(lines string) map[string]any {
		m := fieldsOf(t, EncodeOrder(Order{ID: "k", Lines: []OrderLine{{Item: 1, Quantity: 1}, {Item: 2, Quantity: 1}}}))
		m[FieldLines] = lines
		return m
	}

	tests := []struct {
		name     string
		fields   map[string]any
		wantKind string
		wantIn   string // a substring of the error
		wantCode string // ErrorCode of the error
	}{
		{"unknown kind", map[string]any{FieldKind: "poll", FieldData: goodData}, "poll", `unknown kind "poll"`, EINTERNAL},
		{"missing kind", map[string]any{FieldData: goodData}, "", `unknown kind ""`, EINTERNAL},
		{"kind not a string", map[string]any{FieldKind: 1, FieldData: goodData}, "", `unknown kind ""`, EINTERNAL},
		{"nil fields", nil, "", "unknown kind", EINTERNAL},
		{"missing data", map[string]any{FieldKind: KindVote}, KindVote, "decode vote entry 7-1", EINTERNAL},
		{"empty data", map[string]any{FieldKind: KindVote, FieldData: ""}, KindVote, "decode vote entry 7-1", EINTERNAL},
		// Redis returns strings; a []byte payload is not read.
		{"data as bytes", map[string]any{FieldKind: KindVote, FieldData: []byte(goodData)}, KindVote, "decode vote entry", EINTERNAL},
		{"bad JSON", map[string]any{FieldKind: KindVote, FieldData: `{"id":`}, KindVote, "decode vote entry", EINTERNAL},
		{"JSON of wrong type", map[string]any{FieldKind: KindVote, FieldData: `{"id":"x","version":"1"}`}, KindVote, "decode vote entry", EINTERNAL},
		{"JSON array", map[string]any{FieldKind: KindVote, FieldData: `[1,2]`}, KindVote, "decode vote entry", EINTERNAL},
		{"JSON null", map[string]any{FieldKind: KindVote, FieldData: `null`}, KindVote, "vote id must be", EINVALID},
		{"valid JSON failing Validate", map[string]any{FieldKind: KindVote, FieldData: invalidData}, KindVote, "version must be positive", EINVALID},
		{"valid JSON, bad choice", map[string]any{FieldKind: KindVote, FieldData: strings.Replace(goodData, `"choice":"cats"`, `"choice":"CATS"`, 1)}, KindVote, "invalid choice", EINVALID},
		{"flat: no id", flat(func(m map[string]any) { delete(m, FieldID) }), KindVote, `field "id" is missing`, EINTERNAL},
		{"flat: voter as bytes", flat(func(m map[string]any) { m[FieldVoter] = []byte("v") }), KindVote, `field "voter"`, EINTERNAL},
		{"flat: version not a number", flat(func(m map[string]any) { m[FieldVersion] = "1e3" }), KindVote, `field "version"`, EINTERNAL},
		{"flat: version out of range", flat(func(m map[string]any) { m[FieldVersion] = "9223372036854775808" }), KindVote, `field "version"`, EINTERNAL},
		{"flat: time not a number", flat(func(m map[string]any) { m[FieldAt] = "2024-05-06" }), KindVote, `field "at"`, EINTERNAL},
		{"flat: no node", flat(func(m map[string]any) { delete(m, FieldNode) }), KindVote, `field "node"`, EINTERNAL},
		{"flat: failing Validate", flat(func(m map[string]any) { m[FieldVersion] = "0" }), KindVote, "version must be positive", EINVALID},
		{"flat: bad choice", flat(func(m map[string]any) { m[FieldChoice] = "CATS" }), KindVote, "invalid choice", EINVALID},
		{"flat order: no item", order(func(m map[string]any) { delete(m, FieldItem) }), KindOrder, `field "item"`, EINTERNAL},
		{"flat order: quantity past int", order(func(m map[string]any) { m[FieldQuantity] = "4294967297" }), KindOrder, "quantity", EINVALID},
		{"flat order: quantity 0", order(func(m map[string]any) { m[FieldQuantity] = "0" }), KindOrder, "quantity must be", EINVALID},
		{"cart: duplicate item", cart("1:1,1:2"), KindOrder, "already in the order", EINVALID},
		{"cart: quantity 0", cart("1:1,2:0"), KindOrder, "line 2: quantity", EINVALID},
		{"cart: 21 lines", cart(strings.Repeat("1:1,", 20) + "1:1"), KindOrder, `field "lines"`, EINTERNAL},
		{"cart: malformed", cart("1:1,2"), KindOrder, `field "lines"`, EINTERNAL},
		{"cart: empty", cart(""), KindOrder, `field "lines"`, EINTERNAL},
		{"flat order: account not a number", order(func(m map[string]any) { m[FieldAccount] = "ada" }), KindOrder, `field "account"`, EINTERNAL},
		{"flat order: account negative", order(func(m map[string]any) { m[FieldAccount] = "-1" }), KindOrder, "account must be", EINVALID},
		{"flat order: unknown kind", order(func(m map[string]any) { m[FieldKind] = "refund" }), "refund", `unknown kind "refund"`, EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEntry("7-1", tt.fields)
			if err == nil {
				t.Fatalf("DecodeEntry = %+v, nil; want an error", e)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("error %q does not contain %q", err, tt.wantIn)
			}
			if !strings.Contains(err.Error(), "7-1") {
				t.Fatalf("error %q does not name the stream id", err)
			}
			if code := ErrorCode(err); code != tt.wantCode {
				t.Fatalf("ErrorCode = %q, want %q", code, tt.wantCode)
			}
			if e.Vote != nil {
				t.Fatalf("poison entry has a vote: %+v", e.Vote)
			}
			if e.StreamID != "7-1" || e.Kind != tt.wantKind {
				t.Fatalf("entry = %+v, want stream id 7-1 and kind %q", e, tt.wantKind)
			}
		})
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	notFound := Errorf(ENOTFOUND, "poll %q not found", "x")
	unavailable := Unavailable("database", cause)
	tests := []struct {
		name    string
		err     error
		code    string
		message string
	}{
		{"nil", nil, "", "internal error"},
		{"plain error", errors.New("boom"), EINTERNAL, "internal error"},
		{"domain error", notFound, ENOTFOUND, `poll "x" not found`},
		{"each code: invalid", Errorf(EINVALID, "bad"), EINVALID, "bad"},
		{"each code: too large", Errorf(ETOOLARGE, "big"), ETOOLARGE, "big"},
		{"each code: internal", Errorf(EINTERNAL, "oops"), EINTERNAL, "oops"},
		{"wrapped once", fmt.Errorf("load: %w", notFound), ENOTFOUND, `poll "x" not found`},
		{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", notFound)), ENOTFOUND, `poll "x" not found`},
		{"joined", errors.Join(errors.New("other"), notFound), ENOTFOUND, `poll "x" not found`},
		{"formatted with %v loses the code", fmt.Errorf("load: %v", notFound), EINTERNAL, "internal error"},
		{"unavailable", unavailable, EUNAVAILABLE, "database unavailable"},
		{"wrapped unavailable", fmt.Errorf("apply: %w", unavailable), EUNAVAILABLE, "database unavailable"},
		{"outermost domain error wins", Unavailable("queue", Errorf(EINVALID, "inner")), EUNAVAILABLE, "queue unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.err); got != tt.code {
				t.Errorf("ErrorCode = %q, want %q", got, tt.code)
			}
			if got := ErrorMessage(tt.err); got != tt.message {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.message)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	limited := RateLimited("locked", 42*time.Second)
	tests := []struct {
		name string
		err  error
		want time.Duration
	}{
		{"nil", nil, 0},
		{"plain error", errors.New("boom"), 0},
		{"no wait", Errorf(ERATELIMIT, "slow down"), 0},
		{"rate limited", limited, 42 * time.Second},
		{"wrapped", fmt.Errorf("admin: %w", limited), 42 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RetryAfter(tt.err); got != tt.want {
				t.Fatalf("RetryAfter = %v, want %v", got, tt.want)
			}
		})
	}
	if ErrorCode(limited) != ERATELIMIT || ErrorMessage(limited) != "locked" {
		t.Fatalf("RateLimited gives code %q, message %q", ErrorCode(limited), ErrorMessage(limited))
	}
}

func TestErrorStringAndUnwrap(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	err := Unavailable("database", cause)
	if !errors.Is(err, cause) {
		t.Fatalf("errors.Is(Unavailable(..., cause), cause) = false")
	}
	if !errors.Is(fmt.Errorf("w: %w", err), cause) {
		t.Fatalf("cause not found through a wrapped Unavailable")
	}
	if got, want := err.Error(), "unavailable: database unavailable: unexpected EOF"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	plain := Errorf(EINVALID, "choice %q is not an option", "birds")
	if got, want := plain.Error(), `invalid: choice "birds" is not an option`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if plain.Unwrap() != nil {
		t.Fatalf("Unwrap() of an error without cause = %v, want nil", plain.Unwrap())
	}
	var e *Error
	if !errors.As(fmt.Errorf("w: %w", plain), &e) || e != plain {
		t.Fatalf("errors.As did not find the *Error")
	}
}

// An order's buyer travels in its entry; an anonymous order's entry is as
// before accounts: no account field.
func TestOrderAccountInEntry(t *testing.T) {
	anonymous := Order{ID: "k-1", Lines: []OrderLine{{Item: 1<<63 - 1, Quantity: MaxOrderQuantity}}, Node: "web-2", At: time.UnixMicro(1_767_323_045_123_456).UTC()}
	mine := anonymous
	mine.Account = 42
	cart := mine
	cart.Lines = []OrderLine{{Item: 7, Quantity: 1}, {Item: 1, Quantity: 2}}
	for _, o := range []Order{anonymous, mine, cart} {
		fields := EncodeOrder(o)
		e, err := DecodeEntry("2-0", fieldsOf(t, fields))
		if err != nil {
			t.Fatalf("DecodeEntry: %v", err)
		}
		if e.Order == nil || e.Order.Account != o.Account || !slices.Equal(e.Order.Lines, o.Lines) {
			t.Fatalf("entry = %+v (order %+v), want order %+v", e, e.Order, o)
		}
		if has := slices.Contains(fields, any(FieldAccount)); has != (o.Account != 0) {
			t.Fatalf("account %d: entry %v", o.Account, fields)
		}
	}
}
