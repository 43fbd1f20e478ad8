package admin

import (
	"testing"

	"github.com/surge-vote/surge/internal/httpx/httpxtest"
)

// FuzzDecodeBody: the strict decoder behind every POST refuses with a
// client error, and accepts only what the README's contract allows, for
// each of the request shapes admin fills.
func FuzzDecodeBody(f *testing.F) {
	httpxtest.BodySeeds(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, dst := range []any{&itemRequest{}, &pollRequest{}} {
			httpxtest.CheckDecodeBody(t, contentType, body, dst)
		}
	})
}

// A refused JSON item or poll is explained in the client's terms: the field
// and what it must be, or the unknown field and the known ones; never a Go
// type or struct name.
func TestJSONErrorsSpeakTheClientsTerms(t *testing.T) {
	httpxtest.CheckJSONErrors(t, []httpxtest.JSONErrorCase{
		{Name: "item: name a number", Dst: func() any { return &itemRequest{} }, Body: `{"name":1,"quantity":1,"price":"1"}`, Want: []string{`"name" must be a string, not a number`}},
		{Name: "item: unknown field", Dst: func() any { return &itemRequest{} }, Body: `{"name":"Mug","id":7}`, Want: []string{`unknown field "id"`, `"name", "quantity", "price"`}},
		{Name: "poll: options a string", Dst: func() any { return &pollRequest{} }, Body: `{"id":"tea","options":"yes,no"}`, Want: []string{`"options" must be a list of strings, not a string`}},
		{Name: "poll: an option a number", Dst: func() any { return &pollRequest{} }, Body: `{"id":"tea","options":["yes",2]}`, Want: []string{`every item of "options" must be a string, not a number`}},
		{Name: "poll: id a number", Dst: func() any { return &pollRequest{} }, Body: `{"id":1e999,"options":["a","b"]}`, Want: []string{`"id" must be a string, not a number`}},
		{Name: "poll: title an object", Dst: func() any { return &pollRequest{} }, Body: `{"id":"tea","title":{},"options":["a","b"]}`, Want: []string{`"title" must be a string, not an object`}},
	})
}
