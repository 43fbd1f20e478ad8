package capture

import (
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/httpx/httpxtest"
	"github.com/surge-vote/surge/internal/surge"
)

// FuzzDecodeBody: the strict decoder behind every POST refuses with a
// client error, and accepts only what the README's contract allows, for
// each of the request shapes it fills.
func FuzzDecodeBody(f *testing.F) {
	httpxtest.BodySeeds(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, dst := range []any{&voteRequest{}, &orderRequest{}} {
			httpxtest.CheckDecodeBody(t, contentType, body, dst)
		}
	})
}

// FuzzDecodeVote: a decoded vote names a choice, comes from exactly the body
// sent, and a refusal is a client error with the zero vote.
func FuzzDecodeVote(f *testing.F) {
	httpxtest.BodySeeds(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		got, err := decodeVote(httpxtest.Request(contentType, body), httpxtest.BodyLimit)
		if err != nil {
			if got != (voteRequest{}) {
				t.Fatalf("decodeVote returned %+v with its error %v", got, err)
			}
			httpxtest.CheckBodyError(t, contentType, body, err)
			return
		}
		if got.Choice == "" {
			t.Fatalf("accepted a vote without a choice: %q", body)
		}
		var form url.Values
		if got.form {
			form, _ = url.ParseQuery(string(body))
			if want := (voteRequest{Poll: form.Get("poll"), Choice: form.Get("choice"), form: true}); got != want {
				t.Fatalf("form %q decoded as %+v; want %+v", body, got, want)
			}
		}
		req := got
		if got.form {
			req = voteRequest{}
		}
		httpxtest.CheckBodyAccepted(t, contentType, body, form, &req)
		if s, bad := httpxtest.InvalidUTF8(reflect.ValueOf(got)); bad {
			t.Fatalf("vote %q accepted with a string that is not valid UTF-8: %q", body, s)
		}
	})
}

var integerLiteral = regexp.MustCompile(`^-?[0-9]+$`)

// referenceLines decides an order's lines from the README alone: 1 to 20
// lines, each item a positive whole number given once, each quantity a
// whole number from 1 to 100. It returns the lines, or false.
func referenceLines(items, quantities []string) ([]surge.OrderLine, bool) {
	if len(items) < 1 || len(items) > 20 || len(items) != len(quantities) {
		return nil, false
	}
	seen := map[int64]bool{}
	var lines []surge.OrderLine
	for k := range items {
		i, err := strconv.ParseInt(items[k], 10, 64)
		if err != nil || i <= 0 || seen[i] {
			return nil, false
		}
		seen[i] = true
		q, err := strconv.ParseInt(quantities[k], 10, 64)
		if err != nil || q < 1 || q > surge.MaxOrderQuantity {
			return nil, false
		}
		lines = append(lines, surge.OrderLine{Item: i, Quantity: int(q)})
	}
	return lines, true
}

// referenceJSONOrder reads a JSON order as the README describes it: one
// item and quantity, or "lines" (then neither item nor quantity), every
// number an integer literal and no key but item and quantity in a line.
func referenceJSONOrder(body []byte) (id string, items, quantities []string, ok bool) {
	var req orderRequest
	if httpxtest.JSONKeys(body, httpx.JSONFieldNames(&req)) != "" || json.Unmarshal(body, &req) != nil {
		return "", nil, nil, false
	}
	literal := func(raw json.RawMessage) (string, bool) {
		return string(raw), integerLiteral.Match(raw)
	}
	absent := func(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }
	if req.Lines == nil {
		item, ok1 := literal(req.Item)
		qty, ok2 := literal(req.Quantity)
		return req.OrderID, []string{item}, []string{qty}, ok1 && ok2
	}
	if !absent(req.Item) || !absent(req.Quantity) {
		return "", nil, nil, false
	}
	// Each line an object with only the keys item and quantity.
	var raw struct {
		Lines []json.RawMessage
	}
	json.Unmarshal(body, &raw)
	for _, l := range raw.Lines {
		if httpxtest.JSONKeys(l, []string{"item", "quantity"}) != "" || string(l) == "null" {
			return "", nil, nil, false
		}
	}
	for _, l := range req.Lines {
		item, ok1 := literal(l.Item)
		qty, ok2 := literal(l.Quantity)
		if !ok1 || !ok2 {
			return "", nil, nil, false
		}
		items, quantities = append(items, item), append(quantities, qty)
	}
	return req.OrderID, items, quantities, true
}

// FuzzDecodeOrder: an accepted order is valid and is exactly the one sent
// (integer literals only, never a float, a string or an exponent), one item
// or a cart; an order the README allows is never refused.
func FuzzDecodeOrder(f *testing.F) {
	httpxtest.BodySeeds(f)
	for _, body := range []string{
		`{"order_id":"c-1","lines":[{"item":1,"quantity":2},{"item":7,"quantity":1}]}`,
		`{"lines":[{"item":1,"quantity":2},{"item":1,"quantity":1}]}`,
		`{"lines":[]}`,
		`{"lines":null,"item":3,"quantity":1}`,
		`{"lines":[{"item":1,"quantity":1}],"item":1}`,
		`{"lines":[{"item":1,"quantity":0}]}`,
		`{"lines":[{"item":1,"quantity":"1"}]}`,
		`{"lines":[{"item":1,"quantity":1,"price":"0"}]}`,
		`{"lines":[null]}`,
		`{"lines":[1]}`,
		`{"lines":{"item":1,"quantity":1}}`,
		`{"lines":[` + strings.Repeat(`{"item":1,"quantity":1},`, 20) + `{"item":21,"quantity":1}]}`,
	} {
		f.Add(httpx.ContentJSON, []byte(body))
	}
	for _, body := range []string{"item=1&quantity=2&item=7&quantity=1", "item=1&quantity=2&item=1&quantity=1",
		"item=1&item=2&quantity=1", "item=1&quantity=1&quantity=2", "quantity=1"} {
		f.Add(httpx.ContentForm, []byte(body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		o, form, err := decodeOrder(httpxtest.Request(contentType, body), httpxtest.BodyLimit)

		// What the README says of this body.
		var id string
		var items, quantities []string
		wellFormed := len(body) <= httpxtest.BodyLimit && utf8.Valid(body)
		switch httpxtest.MediaType(contentType) {
		case "json":
			var ok bool
			id, items, quantities, ok = referenceJSONOrder(body)
			wellFormed = wellFormed && ok
		case "form":
			q, perr := url.ParseQuery(string(body))
			wellFormed = wellFormed && perr == nil
			id, items, quantities = q.Get("order_id"), q["item"], q["quantity"]
			if len(items) <= 1 { // one item: its first quantity
				items, quantities = []string{q.Get("item")}, []string{q.Get("quantity")}
			}
		default:
			wellFormed = false
		}
		want, valid := referenceLines(items, quantities)
		valid = valid && wellFormed && (id == "" || surge.ValidOrderID(id))

		if err != nil {
			if valid {
				t.Fatalf("refused a valid order %q (%s): %v", body, contentType, err)
			}
			httpxtest.CheckBodyError(t, contentType, body, err)
			return
		}
		if !valid {
			t.Fatalf("accepted %q (%s) as %+v; the README refuses it", body, contentType, o)
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("accepted an order that does not validate: %+v: %v", o, err)
		}
		if !slices.Equal(o.Lines, want) || (form != nil) != (httpxtest.MediaType(contentType) == "form") {
			t.Fatalf("order %q decoded as %+v (form %v); want lines %v", body, o, form != nil, want)
		}
		if id != "" && o.ID != id {
			t.Fatalf("order_id %q decoded as %q", id, o.ID)
		}
		if _, err := ulid.ParseStrict(o.ID); id == "" && err != nil {
			t.Fatalf("no order_id given, got %q, not a fresh ULID", o.ID)
		}
	})
}
