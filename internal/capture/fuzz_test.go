package capture

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/surge-vote/surge/internal/surge"
)

// fuzzLimit is the body limit of the decoder fuzz targets: small, so that
// the fuzzer reaches it.
const fuzzLimit = 512

func fuzzRequest(contentType string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

// mediaTypeOf is the media type the decoders should dispatch on: "json",
// "form" or "" for anything they must refuse.
func mediaTypeOf(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
		return ""
	case mt == ctJSON:
		return "json"
	case mt == ctForm:
		return "form"
	}
	return ""
}

// jsonKeys checks a JSON body the way a strict decoder into a struct with
// the given field names should: one object (or null) and no other key. It
// returns why the body must be refused, or "".
func jsonKeys(body []byte, fields []string) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return "not JSON"
	}
	if tok == nil {
		if _, err := dec.Token(); err == nil {
			return "trailing data after null"
		}
		return ""
	}
	if tok != json.Delim('{') {
		return "not an object"
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "bad key"
		}
		key := tok.(string)
		known := false
		for _, f := range fields {
			known = known || strings.EqualFold(key, f) // encoding/json matches names case-insensitively
		}
		if !known {
			return fmt.Sprintf("unknown key %q", key)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "bad value"
		}
	}
	if _, err := dec.Token(); err != nil {
		return "unterminated object"
	}
	if _, err := dec.Token(); err == nil {
		return "trailing data"
	}
	return ""
}

// invalidUTF8 returns the first string in v (strings, string slices, form
// values) that is not valid UTF-8.
func invalidUTF8(v reflect.Value) (string, bool) {
	switch v.Kind() {
	case reflect.String:
		return v.String(), !utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return invalidUTF8(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if s, bad := invalidUTF8(v.Field(i)); bad {
				return s, true
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", false // raw JSON: checked as a whole
		}
		for i := range v.Len() {
			if s, bad := invalidUTF8(v.Index(i)); bad {
				return s, true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if s, bad := invalidUTF8(it.Key()); bad {
				return s, true
			}
			if s, bad := invalidUTF8(it.Value()); bad {
				return s, true
			}
		}
	}
	return "", false
}

// checkBodyError holds for every refusal of decodeBody: an EUNSUPPORTED
// exactly when the content type is neither JSON nor a form (whatever the
// body); otherwise an EINVALID, or an ETOOLARGE only for a body over the
// limit, and always for a body over it.
func checkBodyError(t *testing.T, contentType string, body []byte, err error) {
	t.Helper()
	code := surge.ErrorCode(err)
	mt := mediaTypeOf(contentType)
	switch {
	case mt == "" && code != surge.EUNSUPPORTED:
		t.Fatalf("Content-Type %q refused with %v (code %q); want %q", contentType, err, code, surge.EUNSUPPORTED)
	case mt == "":
	case code != surge.EINVALID && code != surge.ETOOLARGE:
		t.Fatalf("error %v has code %q; want %q or %q", err, code, surge.EINVALID, surge.ETOOLARGE)
	case code == surge.ETOOLARGE && len(body) <= fuzzLimit:
		t.Fatalf("%d bytes of %q refused as too large (limit %d)", len(body), contentType, fuzzLimit)
	case code != surge.ETOOLARGE && len(body) > fuzzLimit:
		t.Fatalf("%d bytes of %q over the limit of %d refused with %v, not as too large", len(body), contentType, fuzzLimit, err)
	}
	if msg := surge.ErrorMessage(err); msg == "" || msg == "internal error" {
		t.Fatalf("error %v has no message for the client", err)
	} else if frag := goInternals(msg); frag != "" && !bytes.Contains(body, []byte(frag)) { // not the client's own text echoed
		t.Fatalf("message %q shows Go internals (%q)", msg, frag)
	}
}

// checkBodyAccepted holds for every body decodeBody accepts: within the
// limit, valid UTF-8 all the way through, a form exactly as url.ParseQuery
// reads it, or one JSON object (or null) with only known keys, decoded
// exactly as a lax decoder would.
func checkBodyAccepted(t *testing.T, contentType string, body []byte, form url.Values, dst any) {
	t.Helper()
	mt := mediaTypeOf(contentType)
	switch {
	case len(body) > fuzzLimit:
		t.Fatalf("accepted %d bytes over the limit of %d", len(body), fuzzLimit)
	case !utf8.Valid(body):
		t.Fatalf("accepted a body that is not valid UTF-8: %q", body)
	case mt == "":
		t.Fatalf("accepted Content-Type %q", contentType)
	case (form != nil) != (mt == "form"):
		t.Fatalf("Content-Type %q decoded as form=%v", contentType, form != nil)
	}
	fresh := reflect.New(reflect.TypeOf(dst).Elem()).Interface()
	if form != nil {
		want, err := url.ParseQuery(string(body))
		if err != nil || !reflect.DeepEqual(form, want) {
			t.Fatalf("form %q decoded as %v; url.ParseQuery gives %v, %v", body, form, want, err)
		}
		if !reflect.DeepEqual(dst, fresh) {
			t.Fatalf("a form body filled the JSON destination: %+v", dst)
		}
		if s, bad := invalidUTF8(reflect.ValueOf(form)); bad {
			t.Fatalf("form %q accepted with a value that is not valid UTF-8: %q", body, s)
		}
		return
	}
	if why := jsonKeys(body, jsonFieldNames(dst)); why != "" {
		t.Fatalf("accepted JSON %q: %s", body, why)
	}
	if err := json.Unmarshal(body, fresh); err != nil || !reflect.DeepEqual(dst, fresh) {
		t.Fatalf("JSON %q decoded as %+v; json.Unmarshal gives %+v, %v", body, dst, fresh, err)
	}
	if s, bad := invalidUTF8(reflect.ValueOf(dst)); bad {
		t.Fatalf("JSON %q accepted with a string that is not valid UTF-8: %q", body, s)
	}
}

// bodySeeds are inputs shared by the decoder fuzz targets.
func bodySeeds(f *testing.F) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, s := range []struct{ ct, body string }{
		{ctJSON, `{"poll":"cats-vs-dogs","choice":"cats"}`},
		{ctJSON, `{"choice":"cats","CHOICE":"dogs"}`},
		{ctJSON, `{"choice":"cats","choice":null}`},
		{ctJSON, `{"choice":"\ud800"}`},
		{ctJSON, `{"choice":"c` + "\xff" + `ats"}`},
		{ctJSON, `{"choice":"cats"} x`},
		{ctJSON, `{"choice":"cats","poll":` + deep(200) + `}`},
		{ctJSON, `{"choice":1e999999}`},
		{ctJSON, `null`},
		{ctJSON, `[]`},
		{ctJSON, ``},
		{ctJSON, `{"order_id":"k-1","item":7,"quantity":2}`},
		{ctJSON, `{"item":1,"quantity":1.5}`},
		{ctJSON, `{"item":99999999999999999999,"quantity":-0}`},
		{ctJSON, `{"item":"7","quantity":1e2}`},
		{ctJSON, `{"name":"Mug","quantity":3,"price":"12.50"}`},
		{ctJSON, `{"name":"Mug","quantity":3,"price":12.5,"extra":1}`},
		{ctJSON, `{"id":"tea","title":"Tea?","options":["yes","no"]}`},
		{"application/json; charset=utf-8", `{"choice":"cats"}`},
		{"Application/JSON", `{"choice":"cats"}`},
		{"application/json; charset", `{"choice":"cats"}`},
		{"application/vnd.api+json", `{"choice":"cats"}`},
		{"text/plain", `choice=cats`},
		{"", `choice=cats`},
		{"multipart/form-data; boundary=x", "--x--"},
		{ctForm, "poll=cats-vs-dogs&choice=dogs"},
		{ctForm, "choice=c\xffats"},
		{ctForm, "choice=ch%C3%A0ts&poll=%e2%82%ac"},
		{ctForm, "choice=%zz"},
		{ctForm, "poll=p;choice=cats"},
		{ctForm, "order_id=k-1&item=7&quantity=2"},
		{ctForm, "item=+7&quantity=007"},
		{ctForm, "name=Mug&quantity=1&price=9.9"},
		{ctForm, "id=fruit&title=Fruit&options=apple,+pear"},
		{ctForm, "choice=" + strings.Repeat("a", fuzzLimit)},
	} {
		f.Add(s.ct, []byte(s.body))
	}
}

// FuzzDecodeBody: the strict decoder behind every POST refuses with a
// client error, and accepts only what the README's contract allows, for
// each of the request shapes it fills.
func FuzzDecodeBody(f *testing.F) {
	bodySeeds(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, dst := range []any{&voteRequest{}, &orderRequest{}, &itemRequest{}, &pollRequest{}} {
			form, err := decodeBody(fuzzRequest(contentType, body), fuzzLimit, dst)
			if err != nil {
				if form != nil {
					t.Fatalf("decodeBody returned a form with its error %v", err)
				}
				checkBodyError(t, contentType, body, err)
				continue
			}
			checkBodyAccepted(t, contentType, body, form, dst)
		}
	})
}

// FuzzDecodeVote: a decoded vote names a choice, comes from exactly the body
// sent, and a refusal is a client error with the zero vote.
func FuzzDecodeVote(f *testing.F) {
	bodySeeds(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		got, err := decodeVote(fuzzRequest(contentType, body), fuzzLimit)
		if err != nil {
			if got != (voteRequest{}) {
				t.Fatalf("decodeVote returned %+v with its error %v", got, err)
			}
			checkBodyError(t, contentType, body, err)
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
		checkBodyAccepted(t, contentType, body, form, &req)
		if s, bad := invalidUTF8(reflect.ValueOf(got)); bad {
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
	bodySeeds(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		o, form, err := decodeOrder(fuzzRequest(contentType, body), fuzzLimit)

		// What the README says of this body.
		var id, item, quantity string
		wellFormed := len(body) <= fuzzLimit && utf8.Valid(body)
		switch mediaTypeOf(contentType) {
		case "json":
			var req orderRequest
			wellFormed = wellFormed && jsonKeys(body, jsonFieldNames(&req)) == "" && json.Unmarshal(body, &req) == nil
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
			checkBodyError(t, contentType, body, err)
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
		if o.Item != wantItem || o.Quantity != wantQty || (form != nil) != (mediaTypeOf(contentType) == "form") {
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
