package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// api is the tool's client for setup and verification: the admin API (basic
// auth), the results API and the vote page. These requests are not part of
// the measured load.
type api struct {
	client         *http.Client
	base           *url.URL // the target, for vote pages
	admin, results *url.URL
	user, password string
}

func (a *api) do(ctx context.Context, method string, u *url.URL, auth bool, body any, out any) (int, error) {
	status, _, err := a.exchange(ctx, method, u, auth, body, out)
	return status, err
}

// exchange is do that also returns the answer's header.
func (a *api) exchange(ctx context.Context, method string, u *url.URL, auth bool, body any, out any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if auth {
		req.SetBasicAuth(a.user, a.password)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: %s: %s", method, u.Path, resp.Status, strings.TrimSpace(string(data[:min(len(data), 300)])))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: decode answer: %w", method, u.Path, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

type apiItem struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Quantity int64  `json:"quantity"`
}

// createItem adds an item through the admin API and returns it. The name
// is new, so this is never a restock.
func (a *api) createItem(ctx context.Context, name string, quantity int64) (apiItem, error) {
	var it apiItem
	status, err := a.do(ctx, http.MethodPost, a.admin.JoinPath("admin", "api", "items"), true,
		map[string]any{"name": name, "quantity": quantity, "price": "1.00"}, &it)
	if err != nil {
		return it, fmt.Errorf("create item: %w", err)
	}
	if status != http.StatusCreated || it.ID <= 0 || it.Quantity != quantity {
		return it, fmt.Errorf("create item %q: got %d %+v, want 201 with a new item of %d units", name, status, it, quantity)
	}
	return it, nil
}

func (a *api) items(ctx context.Context) ([]apiItem, error) {
	var items []apiItem
	_, err := a.do(ctx, http.MethodGet, a.admin.JoinPath("admin", "api", "items"), true, nil, &items)
	return items, err
}

// createPoll creates a poll through the admin API, then waits until the
// frontends accept votes for it (they learn of it by NOTIFY): several
// vote-page reads in a row through the target must find it.
func (a *api) createPoll(ctx context.Context, id string, options []string) error {
	if _, err := a.do(ctx, http.MethodPost, a.admin.JoinPath("admin", "api", "polls"), true,
		map[string]any{"id": id, "title": "surge load " + id, "options": options}, nil); err != nil {
		return fmt.Errorf("create poll: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for ok := 0; ok < 8; {
		status, _ := a.do(ctx, http.MethodGet, a.base.JoinPath("polls", id), false, nil, nil)
		if status == http.StatusOK {
			ok++
			continue
		}
		ok = 0
		select {
		case <-ctx.Done():
			return fmt.Errorf("poll %s: the frontends did not learn of it: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

type pollResults struct {
	Poll   string           `json:"poll"`
	Counts map[string]int64 `json:"counts"`
	Total  int64            `json:"total"`
	Seq    int64            `json:"seq"` // the poll's commit sequence these counts are at
}

func (a *api) pollResults(ctx context.Context, poll string) (pollResults, error) {
	var r pollResults
	_, err := a.do(ctx, http.MethodGet, a.results.JoinPath("results", "api", "polls", poll), false, nil, &r)
	return r, err
}

// Backlog is the result service's view of the queues.
type Backlog struct {
	Drained bool `json:"drained"`
	Shards  []struct {
		Shard   int   `json:"shard"`
		Pending int64 `json:"pending"`
		Lag     int64 `json:"lag"`
	} `json:"shards"`
	// Seq is each poll's commit sequence once drained: results at or past
	// it include every applied vote.
	Seq map[string]int64 `json:"seq"`
}

// Entries is the number of entries not yet drained.
func (b Backlog) Entries() int64 {
	var n int64
	for _, s := range b.Shards {
		n += s.Pending + s.Lag
	}
	return n
}

func (a *api) backlog(ctx context.Context) (Backlog, error) {
	var b Backlog
	_, err := a.do(ctx, http.MethodGet, a.results.JoinPath("results", "api", "backlog"), false, nil, &b)
	return b, err
}

// waitDrained waits until every shard reports nothing pending and nothing
// undelivered, twice in a row, and returns the last answer and how long it
// took.
func (a *api) waitDrained(ctx context.Context, timeout time.Duration, progress func(Backlog)) (Backlog, time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	streak := 0
	for {
		b, err := a.backlog(ctx)
		switch {
		case err == nil && b.Drained && len(b.Shards) > 0:
			if streak++; streak >= 2 {
				return b, time.Since(start), nil
			}
		case err == nil:
			streak = 0
			if progress != nil {
				progress(b)
			}
		default:
			streak = 0
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return b, time.Since(start), fmt.Errorf("wait for the queues to drain: %w (last error: %v)", ctx.Err(), err)
			}
			return b, time.Since(start), fmt.Errorf("wait for the queues to drain: %w (%d entries left)", ctx.Err(), b.Entries())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// auditVotes reads every page of a poll's audit, following each answer's
// Link rel="next".
func (a *api) auditVotes(ctx context.Context, poll string) ([]AuditVote, error) {
	u := a.admin.JoinPath("admin", "api", "polls", poll, "audit")
	var all []AuditVote
	for u != nil {
		var page []AuditVote
		_, h, err := a.exchange(ctx, http.MethodGet, u, true, nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		u = nil
		if m := nextLink.FindStringSubmatch(h.Get("Link")); m != nil {
			if u, err = a.admin.Parse(m[1]); err != nil {
				return nil, fmt.Errorf("audit of %s: next page: %w", poll, err)
			}
		}
	}
	return all, nil
}

// nextLink finds the next page's address in a Link header as admin writes it.
var nextLink = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

func (a *api) auditOrders(ctx context.Context) ([]AuditOrder, error) {
	var orders []AuditOrder
	_, err := a.do(ctx, http.MethodGet, a.admin.JoinPath("admin", "api", "audit", "orders"), true, nil, &orders)
	return orders, err
}
