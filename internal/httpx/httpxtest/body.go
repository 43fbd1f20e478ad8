// Package httpxtest holds the checks that the HTTP tests of several services
// share: how the strict body decoder must refuse or accept a body, and
// hostile requests (oversized, malformed, header floods) sent to a real
// handler, whose answers must be JSON errors in the client's terms.
package httpxtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/surge"
)

// BodyLimit is the body limit for the decoder checks: small, so that
// the fuzzer reaches it.
const BodyLimit = 512

// Request is a POST of body with the given Content-Type (none if empty).
func Request(contentType string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

// MediaType is the media type the decoders should dispatch on: "json",
// "form" or "" for anything they must refuse.
func MediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
		return ""
	case mt == httpx.ContentJSON:
		return "json"
	case mt == httpx.ContentForm:
		return "form"
	}
	return ""
}

// JSONKeys checks a JSON body the way a strict decoder into a struct with
// the given field names should: one object (or null) and no other key. It
// returns why the body must be refused, or "".
func JSONKeys(body []byte, fields []string) string {
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

// InvalidUTF8 returns the first string in v (strings, string slices, form
// values) that is not valid UTF-8.
func InvalidUTF8(v reflect.Value) (string, bool) {
	switch v.Kind() {
	case reflect.String:
		return v.String(), !utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return InvalidUTF8(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if s, bad := InvalidUTF8(v.Field(i)); bad {
				return s, true
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", false // raw JSON: checked as a whole
		}
		for i := range v.Len() {
			if s, bad := InvalidUTF8(v.Index(i)); bad {
				return s, true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if s, bad := InvalidUTF8(it.Key()); bad {
				return s, true
			}
			if s, bad := InvalidUTF8(it.Value()); bad {
				return s, true
			}
		}
	}
	return "", false
}

// CheckBodyError holds for every refusal of DecodeBody: an EUNSUPPORTED
// exactly when the content type is neither JSON nor a form (whatever the
// body); otherwise an EINVALID, or an ETOOLARGE only for a body over the
// limit, and always for a body over it.
func CheckBodyError(t *testing.T, contentType string, body []byte, err error) {
	t.Helper()
	code := surge.ErrorCode(err)
	mt := MediaType(contentType)
	switch {
	case mt == "" && code != surge.EUNSUPPORTED:
		t.Fatalf("Content-Type %q refused with %v (code %q); want %q", contentType, err, code, surge.EUNSUPPORTED)
	case mt == "":
	case code != surge.EINVALID && code != surge.ETOOLARGE:
		t.Fatalf("error %v has code %q; want %q or %q", err, code, surge.EINVALID, surge.ETOOLARGE)
	case code == surge.ETOOLARGE && len(body) <= BodyLimit:
		t.Fatalf("%d bytes of %q refused as too large (limit %d)", len(body), contentType, BodyLimit)
	case code != surge.ETOOLARGE && len(body) > BodyLimit:
		t.Fatalf("%d bytes of %q over the limit of %d refused with %v, not as too large", len(body), contentType, BodyLimit, err)
	}
	if msg := surge.ErrorMessage(err); msg == "" || msg == "internal error" {
		t.Fatalf("error %v has no message for the client", err)
	} else if frag := GoInternals(msg); frag != "" && !bytes.Contains(body, []byte(frag)) { // not the client's own text echoed
		t.Fatalf("message %q shows Go internals (%q)", msg, frag)
	}
}

// CheckBodyAccepted holds for every body DecodeBody accepts: within the
// limit, valid UTF-8 all the way through, a form exactly as url.ParseQuery
// reads it, or one JSON object (or null) with only known keys, decoded
// exactly as a lax decoder would.
func CheckBodyAccepted(t *testing.T, contentType string, body []byte, form url.Values, dst any) {
	t.Helper()
	mt := MediaType(contentType)
	switch {
	case len(body) > BodyLimit:
		t.Fatalf("accepted %d bytes over the limit of %d", len(body), BodyLimit)
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
		if s, bad := InvalidUTF8(reflect.ValueOf(form)); bad {
			t.Fatalf("form %q accepted with a value that is not valid UTF-8: %q", body, s)
		}
		return
	}
	if why := JSONKeys(body, httpx.JSONFieldNames(dst)); why != "" {
		t.Fatalf("accepted JSON %q: %s", body, why)
	}
	if err := json.Unmarshal(body, fresh); err != nil || !reflect.DeepEqual(dst, fresh) {
		t.Fatalf("JSON %q decoded as %+v; json.Unmarshal gives %+v, %v", body, dst, fresh, err)
	}
	if s, bad := InvalidUTF8(reflect.ValueOf(dst)); bad {
		t.Fatalf("JSON %q accepted with a string that is not valid UTF-8: %q", body, s)
	}
}

// BodySeeds adds the inputs shared by the decoder fuzz targets: votes,
// orders, items, polls, sign-ups and logins, as JSON and forms, well-formed or not.
func BodySeeds(f *testing.F) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, s := range []struct{ ct, body string }{
		{httpx.ContentJSON, `{"poll":"cats-vs-dogs","choice":"cats"}`},
		{httpx.ContentJSON, `{"choice":"cats","CHOICE":"dogs"}`},
		{httpx.ContentJSON, `{"choice":"cats","choice":null}`},
		{httpx.ContentJSON, `{"choice":"\ud800"}`},
		{httpx.ContentJSON, `{"choice":"c` + "\xff" + `ats"}`},
		{httpx.ContentJSON, `{"choice":"cats"} x`},
		{httpx.ContentJSON, `{"choice":"cats","poll":` + deep(200) + `}`},
		{httpx.ContentJSON, `{"choice":1e999999}`},
		{httpx.ContentJSON, `null`},
		{httpx.ContentJSON, `[]`},
		{httpx.ContentJSON, ``},
		{httpx.ContentJSON, `{"order_id":"k-1","item":7,"quantity":2}`},
		{httpx.ContentJSON, `{"item":1,"quantity":1.5}`},
		{httpx.ContentJSON, `{"item":99999999999999999999,"quantity":-0}`},
		{httpx.ContentJSON, `{"item":"7","quantity":1e2}`},
		{httpx.ContentJSON, `{"order_id":"c-1","lines":[{"item":1,"quantity":2},{"item":7,"quantity":1}]}`},
		{httpx.ContentJSON, `{"lines":[{"item":1,"quantity":2,"price":"0"}]}`},
		{httpx.ContentJSON, `{"name":"Mug","quantity":3,"price":"12.50"}`},
		{httpx.ContentJSON, `{"name":"Mug","quantity":3,"price":12.5,"extra":1}`},
		{httpx.ContentJSON, `{"id":"tea","title":"Tea?","options":["yes","no"]}`},
		{httpx.ContentJSON, `{"name":"Ada","email":"ada@example.com","password":"correct horse battery"}`},
		{httpx.ContentJSON, `{"email":"Ada@Example.com","password":"x","Password":"y"}`},
		{httpx.ContentJSON, `{"name":"A","email":"Ada <ada@example.com>","password":"` + strings.Repeat("p", 73) + `"}`},
		{"application/json; charset=utf-8", `{"choice":"cats"}`},
		{"Application/JSON", `{"choice":"cats"}`},
		{"application/json; charset", `{"choice":"cats"}`},
		{"application/vnd.api+json", `{"choice":"cats"}`},
		{"text/plain", `choice=cats`},
		{"", `choice=cats`},
		{"multipart/form-data; boundary=x", "--x--"},
		{httpx.ContentForm, "poll=cats-vs-dogs&choice=dogs"},
		{httpx.ContentForm, "choice=c\xffats"},
		{httpx.ContentForm, "choice=ch%C3%A0ts&poll=%e2%82%ac"},
		{httpx.ContentForm, "choice=%zz"},
		{httpx.ContentForm, "poll=p;choice=cats"},
		{httpx.ContentForm, "order_id=k-1&item=7&quantity=2"},
		{httpx.ContentForm, "item=+7&quantity=007"},
		{httpx.ContentForm, "item=1&quantity=2&item=7&quantity=1"},
		{httpx.ContentForm, "name=Mug&quantity=1&price=9.9"},
		{httpx.ContentForm, "id=fruit&title=Fruit&options=apple,+pear"},
		{httpx.ContentForm, "name=Ada&email=ada%40example.com&password=correct+horse+battery"},
		{httpx.ContentForm, "email=ada%40example.com&email=bob%40example.com&password=%00%00%00%00%00%00%00%00%00%00"},
		{httpx.ContentForm, "choice=" + strings.Repeat("a", BodyLimit)},
	} {
		f.Add(s.ct, []byte(s.body))
	}
}

// CheckDecodeBody decodes body into dst with httpx.DecodeBody and checks
// the refusal (CheckBodyError) or what was accepted (CheckBodyAccepted).
func CheckDecodeBody(t *testing.T, contentType string, body []byte, dst any) {
	t.Helper()
	form, err := httpx.DecodeBody(Request(contentType, body), BodyLimit, dst)
	if err != nil {
		if form != nil {
			t.Fatalf("DecodeBody returned a form with its error %v", err)
		}
		CheckBodyError(t, contentType, body, err)
		return
	}
	CheckBodyAccepted(t, contentType, body, form, dst)
}

// GoInternals returns the first fragment of msg that belongs to Go or to
// the services' code rather than to the client's request, or "".
func GoInternals(msg string) string {
	for _, frag := range []string{"Go ", "go ", "struct", "capture.", "admin.", "httpx.", "main.", "json:", "unmarshal", "Request", "[]", "RawMessage",
		"reflect", "int64", "float64", "interface"} {
		if strings.Contains(msg, frag) {
			return frag
		}
	}
	return ""
}

// JSONErrorCase is a JSON body that DecodeBody must refuse into a fresh
// Dst(), with a message holding every Want fragment.
type JSONErrorCase struct {
	Name string
	Dst  func() any
	Body string
	Want []string
}

// CheckJSONErrors checks that each refused JSON body is explained in the
// client's terms: an EINVALID whose message says what each case wants and
// shows no Go internals.
func CheckJSONErrors(t *testing.T, cases []JSONErrorCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.Body))
			r.Header.Set("Content-Type", httpx.ContentJSON)
			_, err := httpx.DecodeBody(r, 4<<10, tt.Dst())
			if code := surge.ErrorCode(err); code != surge.EINVALID {
				t.Fatalf("%s: code %q (%v), want %q", tt.Body, code, err, surge.EINVALID)
			}
			msg := surge.ErrorMessage(err)
			if frag := GoInternals(msg); frag != "" {
				t.Errorf("message %q shows Go internals (%q)", msg, frag)
			}
			for _, w := range tt.Want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not say %q", msg, w)
				}
			}
		})
	}
}
