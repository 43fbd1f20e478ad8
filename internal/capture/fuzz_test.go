package capture

import (
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
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

// referenceOrder decides an order from the README alone: item a positive
// whole number, quantity a whole number from 1 to 100, order_id empty or
// 1-64 of [A-Za-z0-9._:-]. JSON numbers must be integer literals.
func referenceOrder(id, item, quantity string) bool {
	i, err := strconv.ParseInt(item, 10, 64)
	if err != nil || i <= 0 {
		return false
	}
	q, err := strconv.ParseInt(quantity, 10, 64)
	if err != nil || q < 1 || q > surge.MaxOrderQuantity {
		return false
	}
	return id == "" || surge.ValidOrderID(id)
}

// FuzzDecodeOrder: an accepted order is valid and is exactly the one sent
// (integer literals only, never a float, a string or an exponent); an order
// the README allows is never refused.
func FuzzDecodeOrder(f *testing.F) {
	httpxtest.BodySeeds(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		o, form, err := decodeOrder(httpxtest.Request(contentType, body), httpxtest.BodyLimit)

		// What the README says of this body.
		var id, item, quantity string
		wellFormed := len(body) <= httpxtest.BodyLimit && utf8.Valid(body)
		switch httpxtest.MediaType(contentType) {
		case "json":
			var req orderRequest
			wellFormed = wellFormed && httpxtest.JSONKeys(body, httpx.JSONFieldNames(&req)) == "" && json.Unmarshal(body, &req) == nil
			id, item, quantity = req.OrderID, string(req.Item), string(req.Quantity)
			wellFormed = wellFormed && integerLiteral.MatchString(item) && integerLiteral.MatchString(quantity)
		case "form":
			q, perr := url.ParseQuery(string(body))
			wellFormed = wellFormed && perr == nil
			id, item, quantity = q.Get("order_id"), q.Get("item"), q.Get("quantity")
		default:
			wellFormed = false
		}
		valid := wellFormed && referenceOrder(id, item, quantity)

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
		wantItem, _ := strconv.ParseInt(item, 10, 64)
		wantQty, _ := strconv.Atoi(quantity)
		if o.Item != wantItem || o.Quantity != wantQty || (form != nil) != (httpxtest.MediaType(contentType) == "form") {
			t.Fatalf("order %q decoded as %+v (form %v); want item %d, quantity %d", body, o, form != nil, wantItem, wantQty)
		}
		if id != "" && o.ID != id {
			t.Fatalf("order_id %q decoded as %q", id, o.ID)
		}
		if _, err := ulid.ParseStrict(o.ID); id == "" && err != nil {
			t.Fatalf("no order_id given, got %q, not a fresh ULID", o.ID)
		}
	})
}
