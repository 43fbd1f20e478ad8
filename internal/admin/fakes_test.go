package admin_test

// The admin handlers on a fake Store: no Postgres. The fake records what it
// was asked, in order.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/admin"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
)

// fakeStore keeps items by name; every call fails while err is set.
type fakeStore struct {
	mu     sync.Mutex
	events []string
	items  []surge.Item
	polls  []surge.Poll
	err    error
}

func (s *fakeStore) add(format string, args ...any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf(format, args...))
	return s.err
}

func (s *fakeStore) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

func (s *fakeStore) UpsertItem(ctx context.Context, in surge.ItemInput) (surge.Item, bool, error) {
	if err := s.add("upsert %s %d%s", in.Name, in.Quantity, details(in)); err != nil {
		return surge.Item{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, it := range s.items {
		if it.Name == in.Name {
			s.items[i].Quantity += in.Quantity
			return s.items[i], false, nil
		}
	}
	if in.Price == nil {
		return surge.Item{}, false, surge.Errorf(surge.EINVALID, "price is required for a new item")
	}
	it := surge.Item{ID: int64(len(s.items) + 1), Name: in.Name, Quantity: in.Quantity, Price: *in.Price}
	s.items = append(s.items, it)
	return it, true, nil
}

// details shows the topic and description an upsert was given.
func details(in surge.ItemInput) string {
	var b strings.Builder
	if in.Topic != nil {
		fmt.Fprintf(&b, " topic=%q", *in.Topic)
	}
	if in.Description != nil {
		fmt.Fprintf(&b, " description=%q", *in.Description)
	}
	return b.String()
}

func (s *fakeStore) RetireItem(ctx context.Context, id int64) (surge.Item, error) {
	if err := s.add("retire %d", id); err != nil {
		return surge.Item{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, it := range s.items {
		if it.ID == id {
			s.items[i].Retired = true
			return s.items[i], nil
		}
	}
	return surge.Item{}, surge.Errorf(surge.ENOTFOUND, "unknown item %d", id)
}

func (s *fakeStore) AllItems(ctx context.Context) ([]surge.Item, error) {
	if err := s.add("items"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.items), nil
}

func (s *fakeStore) CreatePoll(ctx context.Context, p surge.Poll) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := s.add("create-poll %s %v", p.ID, p.Options); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls = append(s.polls, p)
	return nil
}

func (s *fakeStore) Polls(ctx context.Context) ([]surge.Poll, error) {
	if err := s.add("polls"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.polls), nil
}

func (s *fakeStore) ClosePoll(ctx context.Context, id string, at time.Time) (surge.Poll, error) {
	if err := s.add("close-poll %s", id); err != nil {
		return surge.Poll{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.polls {
		if p.ID == id {
			if p.ClosesAt == nil || at.Before(*p.ClosesAt) {
				s.polls[i].ClosesAt = &at
			}
			return s.polls[i], nil
		}
	}
	return surge.Poll{}, surge.Errorf(surge.ENOTFOUND, "unknown poll %q", id)
}

func (s *fakeStore) CountedVotes(ctx context.Context, poll, after string, limit int) ([]postgres.VoteRecord, error) {
	return nil, s.add("counted-votes %s after %q limit %d", poll, after, limit)
}

func (s *fakeStore) AppliedOrders(ctx context.Context) ([]postgres.OrderRecord, error) {
	return nil, s.add("applied-orders")
}

func (s *fakeStore) Ping(ctx context.Context) error { return s.add("ping") }

func TestAdminOnAFakeStore(t *testing.T) {
	store := &fakeStore{}
	cfg := admin.DefaultConfig()
	cfg.AdminPassword, cfg.AdminMaxFails = adminPassword, 100 // no Postgres URL: the fake is the store
	ts := serveAdmin(t, cfg, admin.Options{Store: store})
	for _, step := range []struct {
		method, path, body string
		auth               bool
		status             int
		events             []string // what the store was asked, in order
	}{
		{"POST", "/admin/api/items", `{"name":"Mug","quantity":3,"price":"12.50"}`, false, 401, nil},
		{"POST", "/admin/api/items", `{"name":"Mug","quantity":3,"price":"12.50"}`, true, 201, []string{"upsert Mug 3"}},
		{"POST", "/admin/api/items", `{"name":"Mug","quantity":2}`, true, 200, []string{"upsert Mug 2"}},
		{"POST", "/admin/api/items", `{"name":"","quantity":-1}`, true, 400, nil}, // refused before the store
		{"GET", "/admin/api/items", "", true, 200, []string{"items"}},
		{"POST", "/admin/api/items", `{"name":"Shoe","quantity":1,"price":"50","topic":" Shoes ","description":" Red, fast. "}`, true, 201, []string{`upsert Shoe 1 topic="shoes" description="Red, fast."`}},
		{"POST", "/admin/api/items", `{"name":"Shoe","quantity":1,"topic":"not a slug"}`, true, 400, nil},
		{"POST", "/admin/api/items", `{"name":"Shoe","quantity":1,"topic":"` + strings.Repeat("t", 41) + `"}`, true, 400, nil},
		{"POST", "/admin/api/items", `{"name":"Shoe","quantity":1,"description":"` + strings.Repeat("d", 2001) + `"}`, true, 400, nil},
		{"POST", "/admin/api/items", `{"name":"Shoe","quantity":1,"description":"bell\u0007"}`, true, 400, nil},
		{"POST", "/admin/api/items", `{"name":"Shoe","quantity":1,"topic":7}`, true, 400, nil},
		{"POST", "/admin/api/items/2/retire", "", false, 401, nil},
		{"POST", "/admin/api/items/2/retire", "", true, 200, []string{"retire 2"}},
		{"POST", "/admin/api/items/99/retire", "", true, 404, []string{"retire 99"}},
		{"POST", "/admin/api/items/shoe/retire", "", true, 404, nil},
		{"GET", "/admin/api/items/2/retire", "", true, 405, nil},
		{"POST", "/admin/api/polls", `{"id":"tea","options":["yes","no"]}`, true, 201, []string{"create-poll tea [yes no]"}},
		{"POST", "/admin/api/polls", `{"id":"final","options":["a","b"],"opens_at":"2027-02-07T22:00:00Z","closes_at":"2027-02-08T22:00:00+01:00"}`, true, 201, []string{"create-poll final [a b]"}},
		{"POST", "/admin/api/polls", `{"id":"bad-time","options":["a","b"],"closes_at":"tomorrow"}`, true, 400, nil},
		{"POST", "/admin/api/polls", `{"id":"bad-time","options":["a","b"],"closes_at":1}`, true, 400, nil},
		{"POST", "/admin/api/polls", `{"id":"backwards","options":["a","b"],"opens_at":"2027-02-08T00:00:00Z","closes_at":"2027-02-07T00:00:00Z"}`, true, 400, nil},
		{"GET", "/admin/api/polls", "", true, 200, []string{"polls"}},
		{"POST", "/admin/api/polls/tea/close", "", false, 401, nil},
		{"POST", "/admin/api/polls/tea/close", "", true, 200, []string{"close-poll tea"}},
		{"POST", "/admin/api/polls/no-such-poll/close", "", true, 404, []string{"close-poll no-such-poll"}},
		{"POST", "/admin/api/polls/Not_A_Slug/close", "", true, 404, nil},
		{"GET", "/admin/api/audit/votes", "", true, 404, []string{"polls"}}, // no such poll in the fake
		{"GET", "/admin/api/audit/votes?poll=tea", "", true, 200, []string{"polls", `counted-votes tea after "" limit 5000`}},
		{"GET", "/admin/api/polls/tea/audit?after=v1&limit=2&format=csv", "", true, 200, []string{"polls", `counted-votes tea after "v1" limit 2`}},
		{"GET", "/admin/api/polls/tea/audit?limit=0", "", true, 400, nil},
		{"GET", "/admin/api/polls/tea/audit?limit=50001", "", true, 400, nil},
		{"GET", "/admin/api/polls/tea/audit?format=xml", "", true, 400, nil},
		{"GET", "/admin/api/polls/Bad_Poll/audit", "", true, 404, nil},
		{"GET", "/admin/api/audit/orders", "", true, 200, []string{"applied-orders"}},
		{"GET", "/healthz", "", false, 200, []string{"ping"}},
	} {
		before := len(store.snapshot())
		contentType := ""
		if step.body != "" {
			contentType = "application/json"
		}
		resp, out := adminDo(t, ts, step.method, step.path, contentType, step.body, step.auth)
		if resp.StatusCode != step.status {
			t.Fatalf("%s %s %s: %d %v, want %d", step.method, step.path, step.body, resp.StatusCode, out, step.status)
		}
		if got := store.snapshot()[before:]; !slices.Equal(got, step.events) {
			t.Fatalf("%s %s %s: the store was asked %q, want %q", step.method, step.path, step.body, got, step.events)
		}
	}

	// The store down: a 503 for writes and for health, never a 2xx.
	store.err = errors.New("connection refused")
	for _, path := range []string{"/admin/api/items", "/healthz"} {
		if resp, _ := adminDo(t, ts, "GET", path, "", "", true); resp.StatusCode < 500 {
			t.Fatalf("GET %s with the store down: %d, want a 5xx", path, resp.StatusCode)
		}
	}
}
