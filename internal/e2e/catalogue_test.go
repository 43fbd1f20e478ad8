package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/testenv"
)

// The catalogue through HAProxy: admin adds items with topics and
// descriptions; every frontend finds them by topic and words and by id.
// A retired item leaves the search and the lookup on every frontend, an
// order for it is refused at capture, and its name cannot come back.
func TestCatalogueSearchLookupAndRetirement(t *testing.T) {
	c := up(t, 2, 1)
	ids := map[string]int64{}
	for _, it := range []map[string]any{
		{"name": "Red running shoe", "quantity": 5, "price": "80.00", "topic": "shoes", "description": "Light and fast."},
		{"name": "Blue boot", "quantity": 5, "price": "120.00", "topic": "shoes", "description": "Warm."},
		{"name": "Red mug", "quantity": 5, "price": "9.50", "topic": "mugs", "description": "Holds tea."},
	} {
		status, item := adminPost(t, c, "/admin/api/items", it)
		if status != http.StatusCreated {
			t.Fatalf("add %v: %d", it["name"], status)
		}
		ids[item.Name] = item.ID
	}
	fronts := []string{"http://" + c.Web[0].Addr, "http://" + c.Web[1].Addr}
	get := func(u string) (int, []byte) {
		resp, err := http.Get(u)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	search := func(front string, q url.Values) ([]string, error) {
		status, b := get(front + "/api/items?" + q.Encode())
		var items []surge.Item
		if err := json.Unmarshal(b, &items); status != 200 || err != nil {
			return nil, fmt.Errorf("search %s on %s: %d %s", q.Encode(), front, status, b)
		}
		return names(items), nil
	}
	// Each frontend sees the new items once the NOTIFY arrived.
	for _, f := range fronts {
		testenv.Eventually(t, resultsLag, func() error {
			got, err := search(f, url.Values{"q": {"red"}})
			if err == nil && !slices.Equal(got, []string{"Red running shoe", "Red mug"}) {
				err = fmt.Errorf("search red on %s: %q", f, got)
			}
			return err
		})
		if got, err := search(f, url.Values{"topic": {"shoes"}, "q": {"shoes"}}); err != nil || !slices.Equal(got, []string{"Red running shoe"}) {
			t.Fatalf("search shoes in shoes on %s: %q %v", f, got, err)
		}
		status, b := get(fmt.Sprintf("%s/api/items/%d", f, ids["Red mug"]))
		var it surge.Item
		if json.Unmarshal(b, &it); status != 200 || it.Topic != "mugs" || it.Description != "Holds tea." {
			t.Fatalf("lookup on %s: %d %s", f, status, b)
		}
	}
	// Retired: gone everywhere, and refused at capture.
	mug := ids["Red mug"]
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/admin/api/items/%d/retire", c.URL, mug), nil)
	req.SetBasicAuth(c.AdminUser, c.AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("retire: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, f := range fronts {
		// The order first: the NOTIFY alone must make it unknown, before
		// anything reloads the catalogue.
		testenv.Eventually(t, resultsLag, func() error {
			resp, err := http.Post(f+"/orders", "application/json", strings.NewReader(fmt.Sprintf(`{"item":%d,"quantity":1}`, mug)))
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 {
				return fmt.Errorf("an order for the retired item on %s: %d %s, want 400", f, resp.StatusCode, b)
			}
			return nil
		})
		if status, b := get(fmt.Sprintf("%s/api/items/%d", f, mug)); status != 404 {
			t.Fatalf("lookup of the retired item on %s: %d %s", f, status, b)
		}
		if got, err := search(f, url.Values{"q": {"red"}}); err != nil || !slices.Equal(got, []string{"Red running shoe"}) {
			t.Fatalf("search red on %s after the retirement: %q %v", f, got, err)
		}
	}
	if status, _ := adminPost(t, c, "/admin/api/items", map[string]any{"name": "red mug", "quantity": 1, "price": "1.00"}); status != http.StatusConflict {
		t.Fatalf("a new item under the retired name: %d, want 409", status)
	}
}

func names(items []surge.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Name)
	}
	return out
}
