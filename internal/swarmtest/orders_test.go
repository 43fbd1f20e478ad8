package swarmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surge-vote/surge/internal/testenv"
)

type item struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Quantity int64  `json:"quantity"`
}

type orderState struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
}

// createItem adds an item through HAProxy's /admin, with the admin's basic
// credentials.
func (c *client) createItem(ctx context.Context, user, password, name string, quantity int) (item, error) {
	body, _ := json.Marshal(map[string]any{"name": name, "quantity": quantity, "price": "9.99"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/admin/api/items", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, password)
	resp, err := c.http.Do(req)
	if err != nil {
		return item{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusCreated {
		return item{}, fmt.Errorf("POST /admin/api/items: %s %s", resp.Status, b)
	}
	var it item
	if err := json.Unmarshal(b, &it); err != nil || it.ID == 0 || it.Quantity != int64(quantity) {
		return item{}, fmt.Errorf("POST /admin/api/items: %s (%v)", b, err)
	}
	return it, nil
}

// catalogueQuantity is an item's quantity in the catalogue a frontend serves.
func (c *client) catalogueQuantity(ctx context.Context, id int64) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/items", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /api/items: %s %s", resp.Status, b)
	}
	var items []item
	if err := json.Unmarshal(b, &items); err != nil {
		return 0, fmt.Errorf("GET /api/items: %w", err)
	}
	for _, it := range items {
		if it.ID == id {
			return it.Quantity, nil
		}
	}
	return 0, fmt.Errorf("item %d is not in the catalogue", id)
}

// order places one order and expects a 202.
func (c *client) order(ctx context.Context, id string, itemID int64) error {
	body := fmt.Sprintf(`{"order_id":%q,"item":%d,"quantity":1}`, id, itemID)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/orders", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /orders %s: %s %s", id, resp.Status, b)
	}
	return nil
}

// orderStatus reads an order's state from result (GET /orders/<id>).
func (c *client) orderStatus(ctx context.Context, id string) (orderState, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/orders/"+id, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return orderState{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return orderState{}, fmt.Errorf("GET /orders/%s: %s %s", id, resp.Status, b)
	}
	var st orderState
	if err := json.Unmarshal(b, &st); err != nil {
		return orderState{}, fmt.Errorf("GET /orders/%s: %s: %w", id, b, err)
	}
	return st, nil
}

// placeOrders sends n orders of one unit, ids prefix-0000…, with the given
// concurrency, and then sends the first repeats of them again (the same ids):
// every one must be acknowledged.
func placeOrders(ctx context.Context, c *client, prefix string, itemID int64, n, repeats, concurrency int) (failed []string) {
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	total := n + repeats
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				if err := c.order(ctx, fmt.Sprintf("%s-%04d", prefix, i%n), itemID); err != nil {
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return failed
}

// orderOutcomes waits until no order is pending and returns how many ended
// in each "status/reason".
func orderOutcomes(ctx context.Context, c *client, prefix string, n int, timeout time.Duration) (map[string]int, error) {
	var counts map[string]int
	err := testenv.WaitFor(ctx, timeout, func() error {
		counts = map[string]int{}
		for i := range n {
			st, err := c.orderStatus(ctx, fmt.Sprintf("%s-%04d", prefix, i))
			if err != nil {
				return err
			}
			if st.Status == "pending" {
				return fmt.Errorf("order %s still pending", st.OrderID)
			}
			counts[st.Status+"/"+st.Reason]++
		}
		return nil
	})
	return counts, err
}
