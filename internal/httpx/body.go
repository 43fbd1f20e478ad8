package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/surge-vote/surge/internal/surge"
)

// The media types a POST body may have.
const (
	ContentJSON = "application/json"
	ContentForm = "application/x-www-form-urlencoded"
	mediaTypes  = "Content-Type must be " + ContentJSON + " or " + ContentForm
)

// DecodeBody reads a body of at most limit bytes. JSON is decoded strictly
// into dst (unknown fields and trailing data are errors, numbers stay
// json.Number); a form is returned instead.
func DecodeBody(r *http.Request, limit int64, dst any) (url.Values, error) {
	// The type is refused before the body is read: a 415 whatever the body.
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mediaType != ContentJSON && mediaType != ContentForm) {
		return nil, surge.Errorf(surge.EUNSUPPORTED, mediaTypes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, surge.Errorf(surge.ETOOLARGE, "body is larger than %d bytes", limit)
		}
		return nil, surge.Errorf(surge.EINVALID, "cannot read body")
	}
	if !utf8.Valid(body) {
		return nil, surge.Errorf(surge.EINVALID, "body is not valid UTF-8")
	}
	switch mediaType {
	case ContentJSON:
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil {
			return nil, jsonError(err, len(body), dst)
		}
		end := int(dec.InputOffset())
		if _, err := dec.Token(); err != io.EOF {
			at := end + len(body[end:]) - len(bytes.TrimLeft(body[end:], " \t\r\n")) + 1
			return nil, surge.Errorf(surge.EINVALID, "invalid JSON at byte %d: nothing may follow the JSON value", at)
		}
		return nil, nil
	default: // ContentForm
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, surge.Errorf(surge.EINVALID, "invalid form: %v", err)
		}
		// Percent-escapes can smuggle bytes the body check never saw.
		for k, vs := range form {
			if !utf8.ValidString(k) {
				return nil, surge.Errorf(surge.EINVALID, "form is not valid UTF-8")
			}
			for _, v := range vs {
				if !utf8.ValidString(v) {
					return nil, surge.Errorf(surge.EINVALID, "form value of %q is not valid UTF-8", k)
				}
			}
		}
		return form, nil
	}
}

// jsonError says what is wrong with a JSON body in the client's terms: the
// field and the type it needs, the unknown field, or the byte where the
// syntax breaks. encoding/json's own messages name Go types and structs.
func jsonError(err error, size int, dst any) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return surge.Errorf(surge.EINVALID, "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return surge.Errorf(surge.EINVALID, "invalid JSON: the body ends at byte %d, before the JSON value does", size)
	case errors.As(err, &syntax):
		// Offset counts the bytes read up to and including the bad one.
		return surge.Errorf(surge.EINVALID, "invalid JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ) && typ.Field == "":
		return surge.Errorf(surge.EINVALID, "the body must be a JSON object, not %s", jsonValueKind(typ.Value))
	case errors.As(err, &typ):
		want := typeInWords(typ.Type)
		if f, ok := jsonField(dst, typ.Field); ok && f.Kind() == reflect.Slice && f.Elem() == typ.Type {
			return surge.Errorf(surge.EINVALID, "every item of %q must be %s, not %s", typ.Field, want, jsonValueKind(typ.Value))
		}
		return surge.Errorf(surge.EINVALID, "%q must be %s, not %s", typ.Field, want, jsonValueKind(typ.Value))
	}
	// DisallowUnknownFields has no error type, only this message.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return surge.Errorf(surge.EINVALID, "unknown field %s; the fields are %s", name, strings.Join(quoted(JSONFieldNames(dst)), ", "))
	}
	return surge.Errorf(surge.EINVALID, "invalid JSON")
}

// JSONFieldNames lists the JSON names of the fields of the struct dst
// points to.
func JSONFieldNames(dst any) []string {
	var names []string
	t := reflect.TypeOf(dst).Elem()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); t.Field(i).IsExported() && name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// jsonField returns the type of the field named name in JSON in the struct
// dst points to.
func jsonField(dst any, name string) (reflect.Type, bool) {
	t := reflect.TypeOf(dst).Elem()
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); tag == name {
			return t.Field(i).Type, true
		}
	}
	return nil, false
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strconv.Quote(n)
	}
	return out
}

// jsonValueKind names the kind of JSON value encoding/json found.
func jsonValueKind(value string) string {
	switch {
	case strings.HasPrefix(value, "number"):
		return "a number"
	case value == "string":
		return "a string"
	case value == "array":
		return "a list"
	case value == "object":
		return "an object"
	case value == "bool":
		return "true or false"
	}
	return "another kind of value"
}

// typeInWords names the JSON value a Go type takes.
func typeInWords(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list"
	}
	return "an object"
}

// NumberLiteral returns the text of a JSON number literal, "" for an absent
// or null value, and "not-a-number" for anything else (a quoted "2" is a
// string, not a quantity), so that integer parsing rejects it.
func NumberLiteral(raw json.RawMessage) json.Number {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return json.Number(raw)
	default:
		return "not-a-number"
	}
}

// WantsHTML reports whether the client asks for a page rather than JSON.
func WantsHTML(r *http.Request) bool {
	return bytes.Contains([]byte(r.Header.Get("Accept")), []byte("text/html"))
}
