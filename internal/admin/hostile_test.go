package admin_test

// Hostile requests against a real admin (real Postgres): each must get a
// clear 4xx with a JSON error message, and nothing may be written. Some
// were production bugs (issue 7); each case states the answer the contract
// asks for.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/admin"
	"github.com/surge-vote/surge/internal/httpx/httpxtest"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// adminService is the admin service on a fresh database, with a client of
// that database.
func adminService(tb testing.TB) (*admin.Server, *postgres.DB, admin.Config) {
	tb.Helper()
	url := testenv.PostgresURL(tb)
	cfg := adminConfig(url)
	return startServer(tb, cfg, admin.Options{}), testenv.PostgresClient(tb, url), cfg
}

// pgState counts what admin writes.
func pgState(t *testing.T, db *postgres.DB) string {
	t.Helper()
	var items, quantity, polls, options int64
	err := db.Pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM items), (SELECT coalesce(sum(quantity), 0) FROM items),
		(SELECT count(*) FROM polls), (SELECT count(*) FROM poll_options)`).Scan(&items, &quantity, &polls, &options)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("items=%d quantity=%d polls=%d options=%d", items, quantity, polls, options)
}

// pgUntouched checks that Postgres still holds what it held before.
func pgUntouched(db *postgres.DB, before string) func(*testing.T) {
	return func(t *testing.T) {
		t.Helper()
		if after := pgState(t, db); after != before {
			t.Fatalf("a refused request wrote to Postgres: %s, was %s", after, before)
		}
	}
}

func TestHostileAdminRequests(t *testing.T) {
	ts, db := newAdmin(t)
	big := strings.Repeat("a", int(admin.DefaultConfig().MaxBody)+1)
	const item = `"name":"Mug","quantity":1,"price":"1.00"`
	const poll = `"id":"tea","title":"Tea?","options":["yes","no"]`
	cases := []httpxtest.Hostile{
		// Oversized bodies.
		{Name: "item JSON over max_body", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"` + big + `","quantity":1,"price":"1"}`, Status: 413},
		{Name: "item form over max_body", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=" + big + "&quantity=1&price=1", Status: 413},
		{Name: "item chunked over max_body", Path: "/admin/api/items", ContentType: httpxtest.JSON, Chunked: true, Body: `{"name":"` + big + `","quantity":1,"price":"1"}`, Status: 413},
		{Name: "item of 1 MiB", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=x&quantity=1&price=1&x=" + strings.Repeat("a", 1<<20), Status: 413},
		{Name: "poll JSON over max_body", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","title":"` + big + `","options":["a","b"]}`, Status: 413},

		// Wrong content types.
		{Name: "item as text/plain", Path: "/admin/api/items", ContentType: "text/plain", Body: `{` + item + `}`, Status: 415},
		{Name: "item without a content type", Path: "/admin/api/items", Body: `{` + item + `}`, Status: 415},
		{Name: "item as multipart", Path: "/admin/api/items", ContentType: "multipart/form-data; boundary=x",
			Body: "--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nMug\r\n--x--\r\n", Status: 415},
		{Name: "poll as XML", Path: "/admin/api/polls", ContentType: "application/xml", Body: `<poll id="tea"/>`, Status: 415},

		// Invalid JSON.
		{Name: "item truncated JSON", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":`, Status: 400},
		{Name: "item two JSON values", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{` + item + `}{}`, Status: 400},
		{Name: "item JSON array", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `[{` + item + `}]`, Status: 400},
		{Name: "item JSON null", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `null`, Status: 400},
		{Name: "poll truncated JSON", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","options":["a",`, Status: 400},
		{Name: "poll JSON null", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `null`, Status: 400},

		// Deep nesting.
		{Name: "item name httpxtest.Nested 1900 deep", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":` + httpxtest.Nested("[", "]", 1900) + `,"quantity":1,"price":"1"}`, Status: 400},
		{Name: "item price httpxtest.Nested", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1,"price":` + httpxtest.Nested(`{"a":`, "}", 500) + `}`, Status: 400},
		{Name: "poll options httpxtest.Nested", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","options":` + httpxtest.Nested("[", "]", 1900) + `}`, Status: 400},

		// Huge numbers.
		{Name: "item quantity 1e999999", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1e999999,"price":"1"}`, Status: 400},
		{Name: "item quantity 30 digits", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":999999999999999999999999999999,"price":"1"}`, Status: 400},
		{Name: "item quantity past int64", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":9223372036854775808,"price":"1"}`, Status: 400},
		{Name: "item price 1e400", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1,"price":1e400}`, Status: 400},
		{Name: "item price 20 digits", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1,"price":"99999999999999999999.99"}`, Status: 400},
		{Name: "item form quantity past int64", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=Mug&quantity=9223372036854775808&price=1", Status: 400},
		{Name: "poll id a number", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":1e999,"options":["a","b"]}`, Status: 400},

		// Negative and fractional quantities and prices.
		{Name: "item quantity -1", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":-1,"price":"1"}`, Status: 400},
		{Name: "item quantity 1.5", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1.5,"price":"1"}`, Status: 400},
		{Name: "item quantity 1e1", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1e1,"price":"1"}`, Status: 400},
		{Name: "item quantity as a string", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":"1","price":"1"}`, Status: 400},
		{Name: "item form quantity -1", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=Mug&quantity=-1&price=1", Status: 400},
		{Name: "item form quantity 1.5", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=Mug&quantity=1.5&price=1", Status: 400},
		{Name: "item price -1", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1,"price":"-1"}`, Status: 400},
		{Name: "item price -0.01 as a number", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1,"price":-0.01}`, Status: 400},
		{Name: "item price three decimals", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1,"price":"1.005"}`, Status: 400},
		{Name: "item form price -1", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=Mug&quantity=1&price=-1", Status: 400},

		// Unknown fields.
		{Name: "item sets its id", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{` + item + `,"id":7}`, Status: 400},
		{Name: "item sets price_cents", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{` + item + `,"price_cents":1}`, Status: 400},
		{Name: "poll sets counts", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{` + poll + `,"counts":{"yes":100}}`, Status: 400},

		// Invalid UTF-8 and control characters.
		{Name: "item JSON name with a stray byte", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: "{\"name\":\"M\xffug\",\"quantity\":1,\"price\":\"1\"}", Status: 400},
		{Name: "item JSON name with NUL", Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mu\u0000g","quantity":1,"price":"1"}`, Status: 400},
		{Name: "item form name raw invalid byte", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=M\xffug&quantity=1&price=1", Status: 400},
		{Name: "item form name escaped invalid byte", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=M%FFug&quantity=1&price=1", Status: 400},
		{Name: "item form name escaped NUL", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=Mu%00g&quantity=1&price=1", Status: 400},
		{Name: "poll JSON title with a stray byte", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: "{\"id\":\"tea\",\"title\":\"T\xffa\",\"options\":[\"yes\",\"no\"]}", Status: 400},
		{Name: "poll form option escaped invalid byte", Path: "/admin/api/polls", ContentType: httpxtest.Form, Body: "id=tea&title=Tea&options=y%FFs,no", Status: 400},
		{Name: "poll closes_at not a time", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","options":["yes","no"],"closes_at":"tomorrow"}`, Status: 400},
		{Name: "poll closes_at a number", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","options":["yes","no"],"closes_at":1893456000}`, Status: 400},
		{Name: "poll closes_at without zone", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","options":["yes","no"],"closes_at":"2030-01-01T00:00:00"}`, Status: 400},
		{Name: "poll closes before it opens", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","options":["yes","no"],"opens_at":"2030-01-02T00:00:00Z","closes_at":"2030-01-01T00:00:00Z"}`, Status: 400},
		{Name: "poll closes as it opens", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","options":["yes","no"],"opens_at":"2030-01-01T00:00:00Z","closes_at":"2030-01-01T01:00:00+01:00"}`, Status: 400},
		{Name: "poll form opens_at not a time", Path: "/admin/api/polls", ContentType: httpxtest.Form, Body: "id=tea&title=Tea&options=yes,no&opens_at=soon", Status: 400},

		// Paths that do not exist.
		{Name: "GET /admin/api/nope", Method: http.MethodGet, Path: "/admin/api/nope", Status: 404},
		{Name: "POST /admin/api/item", Path: "/admin/api/item", ContentType: httpxtest.JSON, Body: `{` + item + `}`, Status: 404},
		{Name: "POST /vote on admin", Path: "/vote", ContentType: httpxtest.JSON, Body: `{"choice":"cats"}`, Status: 404},
	}
	before := pgState(t, db)
	httpxtest.Run(t, ts.URL, asAdmin, cases, pgUntouched(db, before))
	// Without credentials, even a hostile body is a 401 and nothing else.
	t.Run("no credentials and a 1 MiB body", func(t *testing.T) {
		resp, body := httpxtest.Send(t, ts.URL, httpxtest.Hostile{Path: "/admin/api/items", ContentType: httpxtest.Form,
			Body: "name=x&quantity=1&price=1&x=" + strings.Repeat("a", 1<<20)}, nil)
		httpxtest.WantJSONError(t, resp, body, http.StatusUnauthorized)
		pgUntouched(db, before)(t)
	})
}

func TestHostileAdminHeaderFloodsAre431(t *testing.T) {
	s, db, _ := adminService(t)
	addr := httpxtest.ServeReal(t, s.Handler(), nil)
	before := pgState(t, db)
	const body = `{"name":"Mug","quantity":1,"price":"1.00"}`
	for name, flood := range httpxtest.HeaderFloods() {
		t.Run(name, func(t *testing.T) {
			req := fmt.Sprintf("POST /admin/api/items HTTP/1.1\r\nHost: surge\r\nAuthorization: Basic YWRtaW46YWRtaW4tcGFzc3dvcmQtMTIz\r\n"+
				"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s", len(body), flood, body)
			resp, b := httpxtest.RawExchange(t, addr, req)
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431; body %.200q", resp.StatusCode, b)
			}
			pgUntouched(db, before)(t)
		})
	}
}

func TestHostileAdminWrongMethodIs405(t *testing.T) {
	ts, db := newAdmin(t)
	httpxtest.Run(t, ts.URL, asAdmin, []httpxtest.Hostile{
		{Name: "DELETE items", Method: http.MethodDelete, Path: "/admin/api/items", Status: 405},
		{Name: "PUT items", Method: http.MethodPut, Path: "/admin/api/items", ContentType: httpxtest.JSON, Body: `{"name":"Mug","quantity":1,"price":"1"}`, Status: 405},
		{Name: "PUT polls", Method: http.MethodPut, Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","options":["yes","no"]}`, Status: 405},
		{Name: "GET close", Method: http.MethodGet, Path: "/admin/api/polls/" + surge.DefaultPollID + "/close", Status: 405},
		{Name: "POST audit", Method: http.MethodPost, Path: "/admin/api/polls/" + surge.DefaultPollID + "/audit", Status: 405},
		{Name: "DELETE polls", Method: http.MethodDelete, Path: "/admin/api/polls", Status: 405},
	}, pgUntouched(db, pgState(t, db)))
}

// A poll title Postgres cannot store (a NUL, or invalid UTF-8 that a form's
// percent escape lets past the body check) is a 400, not a 500.
func TestHostilePollTitleWithNULOrInvalidUTF8Is400(t *testing.T) {
	ts, db := newAdmin(t)
	httpxtest.Run(t, ts.URL, asAdmin, []httpxtest.Hostile{
		{Name: "JSON title with NUL", Path: "/admin/api/polls", ContentType: httpxtest.JSON, Body: `{"id":"tea","title":"Tea\u0000?","options":["yes","no"]}`, Status: 400},
		{Name: "form title escaped invalid byte", Path: "/admin/api/polls", ContentType: httpxtest.Form, Body: "id=tea&title=T%FFa&options=yes,no", Status: 400},
		{Name: "form title escaped NUL", Path: "/admin/api/polls", ContentType: httpxtest.Form, Body: "id=tea&title=Tea%00&options=yes,no", Status: 400},
	}, pgUntouched(db, pgState(t, db)))
}

// A cross-origin refusal is a 403 with a JSON message, like every other
// error answer (httpx.ErrorBody), not net/http's plain text.
func TestHostileCrossOriginRefusalIsJSON(t *testing.T) {
	ts, db := newAdmin(t)
	httpxtest.Run(t, ts.URL, asAdmin, []httpxtest.Hostile{
		{Name: "cross-site form post", Path: "/admin/api/items", ContentType: httpxtest.Form, Body: "name=Mug&quantity=1&price=1",
			Header: []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, Status: 403},
		{Name: "cross-origin JSON post without Sec-Fetch-Site", Path: "/admin/api/polls", ContentType: httpxtest.JSON,
			Body: `{"id":"tea","title":"Tea?","options":["yes","no"]}`, Header: []string{"Origin", "https://evil.example"}, Status: 403},
	}, pgUntouched(db, pgState(t, db)))
}
