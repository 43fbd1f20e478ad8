package capture_test

// Hostile requests whose answers are production bugs (issue 7). Each case
// states the answer the contract asks for, so these tests fail until the bug
// is fixed. The helpers are in hostile_test.go.

import (
	"net/http"
	"testing"

	"github.com/surge-vote/surge/internal/testenv"
)

// A method a path does not serve is a 405 with a JSON message, not a 404
// "no such page".
func TestHostileFrontendWrongMethodIs405(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	runHostile(t, ts.URL, false, []hostileCase{
		{name: "GET /vote", method: http.MethodGet, path: "/vote", status: 405},
		{name: "PUT /vote", method: http.MethodPut, path: "/vote", contentType: hostileJSON, body: `{"choice":"cats"}`, status: 405},
		{name: "DELETE /vote", method: http.MethodDelete, path: "/vote", status: 405},
		{name: "PATCH /orders", method: http.MethodPatch, path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":1}`, status: 405},
		{name: "PUT /orders", method: http.MethodPut, path: "/orders", contentType: hostileJSON, body: `{"item":1,"quantity":1}`, status: 405},
		{name: "POST /api/items", path: "/api/items", contentType: hostileJSON, body: `{"name":"x","quantity":1,"price":"1"}`, status: 405},
	}, redisUntouched(rc))
}

func TestHostileAdminWrongMethodIs405(t *testing.T) {
	ts, db := newAdmin(t)
	runHostile(t, ts.URL, true, []hostileCase{
		{name: "DELETE items", method: http.MethodDelete, path: "/admin/api/items", status: 405},
		{name: "PUT items", method: http.MethodPut, path: "/admin/api/items", contentType: hostileJSON, body: `{"name":"Mug","quantity":1,"price":"1"}`, status: 405},
		{name: "GET polls", method: http.MethodGet, path: "/admin/api/polls", status: 405},
		{name: "DELETE polls", method: http.MethodDelete, path: "/admin/api/polls", status: 405},
	}, pgUntouched(db, pgState(t, db)))
}

// A poll title Postgres cannot store (a NUL, or invalid UTF-8 that a form's
// percent escape lets past the body check) is a 400, not a 500.
func TestHostilePollTitleWithNULOrInvalidUTF8Is400(t *testing.T) {
	ts, db := newAdmin(t)
	runHostile(t, ts.URL, true, []hostileCase{
		{name: "JSON title with NUL", path: "/admin/api/polls", contentType: hostileJSON, body: `{"id":"tea","title":"Tea\u0000?","options":["yes","no"]}`, status: 400},
		{name: "form title escaped invalid byte", path: "/admin/api/polls", contentType: hostileForm, body: "id=tea&title=T%FFa&options=yes,no", status: 400},
		{name: "form title escaped NUL", path: "/admin/api/polls", contentType: hostileForm, body: "id=tea&title=Tea%00&options=yes,no", status: 400},
	}, pgUntouched(db, pgState(t, db)))
}

// A cross-origin refusal is a 403 with a JSON message, like every other
// error answer (httpx.ErrorBody), not net/http's plain text.
func TestHostileCrossOriginRefusalIsJSON(t *testing.T) {
	ts, db := newAdmin(t)
	runHostile(t, ts.URL, true, []hostileCase{
		{name: "cross-site form post", path: "/admin/api/items", contentType: hostileForm, body: "name=Mug&quantity=1&price=1",
			header: []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, status: 403},
		{name: "cross-origin JSON post without Sec-Fetch-Site", path: "/admin/api/polls", contentType: hostileJSON,
			body: `{"id":"tea","title":"Tea?","options":["yes","no"]}`, header: []string{"Origin", "https://evil.example"}, status: 403},
	}, pgUntouched(db, pgState(t, db)))
}
