package capture_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

func TestOrdersAreQueuedOnceByID(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	var first surge.OrderState
	for i := range 3 {
		resp := post(t, ts.URL+"/orders", "application/json", `{"order_id":"k-1","item":7,"quantity":2}`)
		var st surge.OrderState
		json.NewDecoder(resp.Body).Decode(&st)
		if resp.StatusCode != http.StatusAccepted || st.OrderID != "k-1" || st.Status != surge.OrderPending {
			t.Fatalf("order %d: %d %+v", i, resp.StatusCode, st)
		}
		if i == 0 {
			first = st
		}
	}
	// Without an order_id the server picks one.
	resp := post(t, ts.URL+"/orders", "application/x-www-form-urlencoded", "item=7&quantity=1")
	var st surge.OrderState
	json.NewDecoder(resp.Body).Decode(&st)
	if resp.StatusCode != http.StatusAccepted || st.OrderID == "" || st.OrderID == first.OrderID {
		t.Fatalf("generated id: %d %+v", resp.StatusCode, st)
	}
	msgs := rc.XRange(context.Background(), "surge:entries", "-", "+").Val()
	if len(msgs) != 2 {
		t.Fatalf("%d entries queued, want 2", len(msgs))
	}
	e, err := surge.DecodeEntry(msgs[0].ID, msgs[0].Values)
	if err != nil || e.Order == nil || e.Order.ID != "k-1" || e.Order.Payload() != "7:2" || e.Order.Node != "node-a" {
		t.Fatalf("queued %+v %v", e.Order, err)
	}
}

// A cart is one entry carrying every line; a repeat with the same lines (in
// any order) is the same order, one with other lines a 409.
func TestCartsAreQueuedOnceByID(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	for i, tt := range []struct {
		body   string
		status int
	}{
		{`{"order_id":"c-1","lines":[{"item":1,"quantity":2},{"item":7,"quantity":1}]}`, 202},
		{`{"order_id":"c-1","lines":[{"item":7,"quantity":1},{"item":1,"quantity":2}]}`, 202},
		{`{"order_id":"c-1","lines":[{"item":1,"quantity":2},{"item":7,"quantity":2}]}`, 409},
		{`{"order_id":"c-1","lines":[{"item":1,"quantity":2}]}`, 409},
	} {
		resp := post(t, ts.URL+"/orders", "application/json", tt.body)
		var st surge.OrderState
		json.NewDecoder(resp.Body).Decode(&st)
		if resp.StatusCode != tt.status {
			t.Fatalf("cart %d: %d %+v, want %d", i, resp.StatusCode, st, tt.status)
		}
		if tt.status == 202 && (st.OrderID != "c-1" || st.Status != surge.OrderPending || len(st.Lines) != 2 || st.Item != 0) {
			t.Fatalf("cart %d: %+v", i, st)
		}
	}
	// A cart form: item and quantity in pairs.
	if resp := post(t, ts.URL+"/orders", "application/x-www-form-urlencoded", "order_id=c-2&item=3&quantity=1&item=4&quantity=5"); resp.StatusCode != 202 {
		t.Fatalf("cart form: %d", resp.StatusCode)
	}
	msgs := rc.XRange(context.Background(), "surge:entries", "-", "+").Val()
	if len(msgs) != 2 {
		t.Fatalf("%d entries queued, want 2", len(msgs))
	}
	for i, want := range []string{"1:2,7:1", "3:1,4:5"} {
		e, err := surge.DecodeEntry(msgs[i].ID, msgs[i].Values)
		if err != nil || e.Order == nil || e.Order.Payload() != want {
			t.Fatalf("queued %+v %v, want lines %s", e.Order, err, want)
		}
	}
}

func TestBadOrdersAreRefusedAndNothingIsQueued(t *testing.T) {
	r := testenv.Redis(t)
	rc := testenv.RedisClient(t, r)
	ts := newServer(t, r)
	for _, tt := range []struct {
		name, body string
		status     int
	}{
		{"quantity 0", `{"item":1,"quantity":0}`, 400},
		{"quantity 101", `{"item":1,"quantity":101}`, 400},
		{"negative quantity", `{"item":1,"quantity":-1}`, 400},
		{"fractional quantity", `{"item":1,"quantity":1.5}`, 400},
		{"quantity as text", `{"item":1,"quantity":"2"}`, 400},
		{"huge quantity", `{"item":1,"quantity":1e400}`, 400},
		{"missing quantity", `{"item":1}`, 400},
		{"missing item", `{"quantity":1}`, 400},
		{"item 0", `{"item":0,"quantity":1}`, 400},
		{"item too large", `{"item":99999999999999999999,"quantity":1}`, 400},
		{"bad order id", `{"order_id":"a b","item":1,"quantity":1}`, 400},
		{"order id too long", `{"order_id":"` + strings.Repeat("a", 65) + `","item":1,"quantity":1}`, 400},
		{"unknown field", `{"item":1,"quantity":1,"discount":99}`, 400},
		{"invalid JSON", `{"item":`, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, ts.URL+"/orders", "application/json", tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	if n := rc.XLen(context.Background(), "surge:entries").Val(); n != 0 {
		t.Fatalf("%d entries queued by refused orders", n)
	}
}

func TestPublicFrontendServesNoAdminRoutes(t *testing.T) {
	ts := newServer(t, testenv.Redis(t))
	for _, path := range []string{"/admin", "/admin/api/items"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s on a public frontend: %d", path, resp.StatusCode)
		}
	}
	if resp := post(t, ts.URL+"/admin/api/items", "application/json", `{"name":"x","quantity":1,"price":"1"}`); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST admin item on a public frontend: %d", resp.StatusCode)
	}
}
