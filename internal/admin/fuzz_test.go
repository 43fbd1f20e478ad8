package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
)

// itemRow is an item as Postgres holds it, if it exists.
type itemRow struct {
	exists   bool
	item     surge.Item
	count    int64 // items in all
	quantity int64 // stock of all items
}

func readItemRow(t *testing.T, db *postgres.DB, key string) itemRow {
	t.Helper()
	ctx := context.Background()
	var r itemRow
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(quantity), 0) FROM items`).Scan(&r.count, &r.quantity); err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		return r // not a text Postgres can hold: no such item
	}
	var cents int64
	err := db.Pool.QueryRow(ctx, `SELECT id, name, quantity, price_cents FROM items WHERE name_key = $1`, key).
		Scan(&r.item.ID, &r.item.Name, &r.item.Quantity, &cents)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		t.Fatal(err)
	default:
		r.exists, r.item.Price = true, surge.Cents(cents)
	}
	return r
}

// jsonItemFields reads the fields of a JSON item the way the README
// describes them: the quantity is a number literal ("" when null), the price
// a string or a number ("" when null or empty; nil when absent).
func jsonItemFields(quantity, price json.RawMessage) (string, *string) {
	q := ""
	switch {
	case string(quantity) == "null":
	case quantity[0] == '-' || (quantity[0] >= '0' && quantity[0] <= '9'):
		q = string(quantity)
	default:
		q = "not a number"
	}
	var p string
	switch {
	case string(price) == "null":
		return q, nil
	case price[0] == '"':
		if err := json.Unmarshal(price, &p); err != nil {
			panic(err) // json.Valid said it was a string
		}
	case price[0] == '-' || (price[0] >= '0' && price[0] <= '9'):
		p = string(price)
	default:
		p = "not a price"
	}
	return q, &p
}

// FuzzAdminItem drives POST /admin/api/items, the real handler on a real
// Postgres, with a JSON body or a form. Whatever the fields, the answer is
// the one the README gives for the values they carry: a 400 naming exactly
// the bad fields (nothing written), a 413 over max_body, a 201 that inserts
// the item as given, or a 200 that adds the quantity to the existing item
// and replaces its price if one is given. Never a 500.
func FuzzAdminItem(f *testing.F) {
	s, db, cfg := adminService(f)
	h := s.Handler()

	f.Add(false, "Mug", "3", `"12.50"`)
	f.Add(false, "  mUG ", "2", `null`)
	f.Add(false, "mug", "0", `9.9`)
	f.Add(false, "Cap", "1.5", `"1.234"`)
	f.Add(false, "", "-1", `"x"`)
	f.Add(false, "Hat", `"5"`, `1e3`)
	f.Add(false, "Hat", "99999999999999999999", `""`)
	f.Add(false, "bad\abell", "1", `true`)
	f.Add(false, "Big", "1", `["1"]`)
	f.Add(false, "c\xffat", "1", `"1"`)
	f.Add(false, strings.Repeat("é", 101), "1000001", `"1000000.01"`)
	f.Add(false, strings.Repeat("x", 5000), "1", `"1"`)
	f.Add(true, "Mug", "3", "12.50")
	f.Add(true, "mug", "+2", "")
	f.Add(true, "Lamp", "0", "0")
	f.Add(true, "Lamp\x00", "1", "1")
	f.Add(true, "L%C3%A4mp", " 1", "1.")
	f.Fuzz(func(t *testing.T, form bool, name, quantity, price string) {
		var body, contentType string
		var q string
		var p *string
		if form {
			contentType = "application/x-www-form-urlencoded"
			body = url.Values{"name": {name}, "quantity": {quantity}, "price": {price}}.Encode()
			q, p = quantity, &price
		} else {
			// quantity and price are JSON values, written as they are.
			if !json.Valid([]byte(quantity)) || !json.Valid([]byte(price)) {
				t.Skip("not one JSON value each")
			}
			qRaw, pRaw := bytes.TrimSpace([]byte(quantity)), bytes.TrimSpace([]byte(price))
			nameJSON, _ := json.Marshal(name)
			json.Unmarshal(nameJSON, &name) // what the server reads: invalid UTF-8 is now U+FFFD
			contentType = "application/json"
			body = `{"name":` + string(nameJSON) + `,"quantity":` + quantity + `,"price":` + price + `}`
			q, p = jsonItemFields(qRaw, pRaw)
		}
		in, inErr := surge.ParseItemInput(name, json.Number(q), p)
		key := surge.ItemKey(name)
		before := readItemRow(t, db, key)

		req := httptest.NewRequest(http.MethodPost, "/admin/api/items", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.SetBasicAuth("admin", adminPassword)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after := readItemRow(t, db, key)

		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s: status %d, Content-Type %q: %.300q", body, rec.Code, ct, rec.Body)
		}
		wantFields := map[string]string(nil)
		wantStatus := http.StatusCreated
		var se *surge.Error
		switch {
		case int64(len(body)) > cfg.MaxBody:
			wantStatus = http.StatusRequestEntityTooLarge
		case !utf8.ValidString(body) || (form && !(utf8.ValidString(name) && utf8.ValidString(quantity) && utf8.ValidString(price))):
			wantStatus = http.StatusBadRequest // the body as a whole, before its fields
		case errors.As(inErr, &se):
			wantStatus, wantFields = http.StatusBadRequest, se.Fields
		case in.Price == nil && !before.exists:
			wantStatus, wantFields = http.StatusBadRequest, map[string]string{"price": "is required for a new item"}
		case before.exists:
			wantStatus = http.StatusOK
		}
		if rec.Code != wantStatus {
			t.Fatalf("%s %.300q: status %d, want %d: %.300q", contentType, body, rec.Code, wantStatus, rec.Body)
		}
		if wantStatus >= 400 {
			var e httpx.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%.300q: no JSON error message: %.300q", body, rec.Body)
			}
			got, want := mapKeys(e.Fields), mapKeys(wantFields)
			if !slices.Equal(got, want) {
				t.Fatalf("%.300q: messages for %v, want for %v (%v)", body, got, want, e.Fields)
			}
			if after != before {
				t.Fatalf("%.300q refused with %d but Postgres changed: %+v -> %+v", body, rec.Code, before, after)
			}
			return
		}
		var got surge.Item
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%.300q: answer %.300q: %v", body, rec.Body, err)
		}
		want := surge.Item{Name: in.Name, Quantity: in.Quantity, Price: 0}
		if in.Price != nil {
			want.Price = *in.Price
		}
		wantCount, wantStock := before.count+1, before.quantity+in.Quantity
		if before.exists {
			want.ID, want.Name, want.Quantity = before.item.ID, before.item.Name, before.item.Quantity+in.Quantity
			if in.Price == nil {
				want.Price = before.item.Price
			}
			wantCount = before.count
		} else {
			want.ID = after.item.ID
		}
		if got != want || after.item != want || after.count != wantCount || after.quantity != wantStock {
			t.Fatalf("%.300q: answered %+v, stored %+v (%d items, stock %d); want %+v (%d items, stock %d)",
				body, got, after.item, after.count, after.quantity, want, wantCount, wantStock)
		}
	})
}

func mapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
