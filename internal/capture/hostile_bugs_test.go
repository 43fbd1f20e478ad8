package capture_test

// Hostile requests whose answers are production bugs (issue 7). Each case
// states the answer the contract asks for, so these tests fail until the bug
// is fixed. The helpers are in hostile_test.go.

import (
	"net/http"
	"testing"

	"github.com/surge-vote/surge/internal/httpx/httpxtest"
	"github.com/surge-vote/surge/internal/testenv"
)

// A method a path does not serve is a 405 with a JSON message, not a 404
// "no such page".
func TestHostileFrontendWrongMethodIs405(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	httpxtest.Run(t, ts.URL, nil, []httpxtest.Hostile{
		{Name: "GET /vote", Method: http.MethodGet, Path: "/vote", Status: 405},
		{Name: "PUT /vote", Method: http.MethodPut, Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":"cats"}`, Status: 405},
		{Name: "DELETE /vote", Method: http.MethodDelete, Path: "/vote", Status: 405},
		{Name: "PATCH /orders", Method: http.MethodPatch, Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":1}`, Status: 405},
		{Name: "PUT /orders", Method: http.MethodPut, Path: "/orders", ContentType: httpxtest.JSON, Body: `{"item":1,"quantity":1}`, Status: 405},
		{Name: "POST /api/items", Path: "/api/items", ContentType: httpxtest.JSON, Body: `{"name":"x","quantity":1,"price":"1"}`, Status: 405},
	}, redisUntouched(rc))
}
