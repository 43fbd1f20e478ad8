package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

func adminPost(t *testing.T, c *launcher.Cluster, path string, body any) (int, surge.Item) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", c.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(c.AdminUser, c.AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var item surge.Item
	json.NewDecoder(resp.Body).Decode(&item)
	return resp.StatusCode, item
}

func catalogue(t *testing.T, base string) []surge.Item {
	t.Helper()
	resp, err := http.Get(base + "/api/items")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw []struct {
		ID       int64
		Name     string
		Quantity int64
		Price    string
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /api/items: %d", resp.StatusCode)
	}
	json.NewDecoder(resp.Body).Decode(&raw)
	items := make([]surge.Item, len(raw))
	for i, r := range raw {
		p, _ := surge.ParsePrice(r.Price)
		items[i] = surge.Item{ID: r.ID, Name: r.Name, Quantity: r.Quantity, Price: p}
	}
	return items
}

func orderState(t *testing.T, base, id string) surge.OrderState {
	t.Helper()
	resp, err := http.Get(base + "/orders/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st surge.OrderState
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// 1,000 concurrent orders of one unit against a stock of 100, through both
// frontends: exactly 100 confirmed, 900 rejected, stock 0. Every frontend's
// cached catalogue shows each change within a second.
func TestOrdersNeverOversell(t *testing.T) {
	c := up(t, 2, 2)
	status, item := adminPost(t, c, "/admin/api/items", map[string]any{"name": "Limited sneaker", "quantity": 100, "price": "199.00"})
	if status != http.StatusCreated || item.Quantity != 100 {
		t.Fatalf("create item: %d %+v", status, item)
	}
	fronts := []string{"http://" + c.Web[0].Addr, "http://" + c.Web[1].Addr}
	for _, f := range fronts {
		waitQuantity(t, f, item.ID, 100)
	}

	const orders = 1000
	var wg sync.WaitGroup
	var next, refused atomic.Int64
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= orders {
					return
				}
				body := fmt.Sprintf(`{"order_id":"sneaker-%04d","item":%d,"quantity":1}`, i, item.ID)
				resp, err := http.Post(fronts[i%2]+"/orders", "application/json", bytes.NewReader([]byte(body)))
				if err != nil || resp.StatusCode != http.StatusAccepted {
					refused.Add(1)
					if resp != nil {
						resp.Body.Close()
					}
					continue
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d orders not acknowledged", n)
	}
	waitDrained(t, c)
	counts := map[string]int{}
	for i := range orders {
		st := orderState(t, c.URL, fmt.Sprintf("sneaker-%04d", i))
		counts[st.Status+"/"+st.Reason]++
	}
	if counts["confirmed/"] != 100 || counts["rejected/out_of_stock"] != 900 || len(counts) != 2 {
		t.Fatalf("order outcomes %v, want 100 confirmed and 900 rejected out_of_stock", counts)
	}
	for _, f := range fronts {
		waitQuantity(t, f, item.ID, 0) // invalidated by the orders, no TTL
	}
	req, _ := http.NewRequest("GET", c.URL+"/admin/api/audit/orders", nil)
	req.SetBasicAuth(c.AdminUser, c.AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var audit []struct{ Status string }
	json.NewDecoder(resp.Body).Decode(&audit)
	resp.Body.Close()
	confirmed := 0
	for _, o := range audit {
		if o.Status == surge.OrderConfirmed {
			confirmed++
		}
	}
	if len(audit) != orders || confirmed != 100 {
		t.Fatalf("audit: %d orders, %d confirmed", len(audit), confirmed)
	}

	// A restock shows on every frontend within a second.
	if status, item = adminPost(t, c, "/admin/api/items", map[string]any{"name": "  LIMITED sneaker ", "quantity": 25}); status != http.StatusOK || item.Quantity != 25 {
		t.Fatalf("restock: %d %+v", status, item)
	}
	for _, f := range fronts {
		waitQuantity(t, f, item.ID, 25)
	}
}

// waitQuantity waits for a frontend's catalogue to show quantity. The
// README promises a change within a second: the commit's NOTIFY drops the
// cached copy, and the next request reads Postgres.
func waitQuantity(t *testing.T, base string, id, quantity int64) {
	t.Helper()
	testenv.Eventually(t, time.Second, func() error {
		items := catalogue(t, base)
		for _, it := range items {
			if it.ID == id && it.Quantity == quantity {
				return nil
			}
		}
		return fmt.Errorf("%s shows %+v, want item %d at %d", base, items, id, quantity)
	})
}
