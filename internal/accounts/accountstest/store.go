// Package accountstest holds an in-memory accounts.Store for the tests of
// the services that use accounts, which can be taken down at will.
package accountstest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/surge-vote/surge/internal/accounts"
	"github.com/surge-vote/surge/internal/surge"
)

var _ accounts.Store = (*Store)(nil)

// Store is an accounts.Store in memory. While Down is set every call fails
// as a store that is down does (EUNAVAILABLE).
type Store struct {
	mu       sync.Mutex
	down     bool
	accounts []stored
	sessions map[string]session
	orders   map[int64][]surge.AccountOrder // by account, oldest first
	Calls    int                            // calls so far
}

type stored struct {
	surge.Account
	hash []byte
}

type session struct {
	account int64
	expires time.Time
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{sessions: map[string]session{}, orders: map[int64][]surge.AccountOrder{}}
}

// SetDown takes the store down (true) or brings it back.
func (s *Store) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Sessions is how many sessions are stored.
func (s *Store) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// AddOrder records an applied order of account, as a worker would.
func (s *Store) AddOrder(account int64, o surge.AccountOrder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders[account] = append(s.orders[account], o)
}

// Hash is the stored password hash of the account with email, nil if none.
func (s *Store) Hash(email string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		if a.Email == email {
			return a.hash
		}
	}
	return nil
}

var errDown = surge.Unavailable("database", errors.New("connection refused"))

func (s *Store) enter() (func(), error) {
	s.mu.Lock()
	s.Calls++
	if s.down {
		s.mu.Unlock()
		return nil, errDown
	}
	return s.mu.Unlock, nil
}

func (s *Store) CreateAccount(ctx context.Context, a surge.Account, hash []byte) (surge.Account, error) {
	unlock, err := s.enter()
	if err != nil {
		return surge.Account{}, err
	}
	defer unlock()
	for _, b := range s.accounts {
		if surge.EmailKey(b.Email) == surge.EmailKey(a.Email) {
			return surge.Account{}, surge.Errorf(surge.ECONFLICT, "email already registered")
		}
	}
	a.ID, a.CreatedAt = int64(len(s.accounts)+1), time.Unix(1_700_000_000, 0).UTC()
	s.accounts = append(s.accounts, stored{a, slices.Clone(hash)})
	return a, nil
}

func (s *Store) AccountByEmail(ctx context.Context, email string) (surge.Account, []byte, error) {
	unlock, err := s.enter()
	if err != nil {
		return surge.Account{}, nil, err
	}
	defer unlock()
	for _, a := range s.accounts {
		if surge.EmailKey(a.Email) == surge.EmailKey(email) {
			return a.Account, a.hash, nil
		}
	}
	return surge.Account{}, nil, surge.Errorf(surge.ENOTFOUND, "no such account")
}

func (s *Store) CreateSession(ctx context.Context, idHash []byte, account int64, expires time.Time) error {
	unlock, err := s.enter()
	if err != nil {
		return err
	}
	defer unlock()
	s.sessions[string(idHash)] = session{account, expires}
	return nil
}

func (s *Store) SessionAccount(ctx context.Context, idHash []byte, now time.Time) (int64, error) {
	unlock, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer unlock()
	v, ok := s.sessions[string(idHash)]
	if !ok || !now.Before(v.expires) {
		return 0, surge.Errorf(surge.ENOTFOUND, "no such session")
	}
	return v.account, nil
}

func (s *Store) DeleteSession(ctx context.Context, idHash []byte) error {
	unlock, err := s.enter()
	if err != nil {
		return err
	}
	defer unlock()
	delete(s.sessions, string(idHash))
	return nil
}

func (s *Store) AccountOrders(ctx context.Context, account int64, before string, limit int) ([]surge.AccountOrder, error) {
	unlock, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()
	all := s.orders[account]
	var out []surge.AccountOrder
	started := before == ""
	for i := len(all) - 1; i >= 0 && len(out) < limit; i-- {
		if started {
			out = append(out, all[i])
		} else if all[i].OrderID == before {
			started = true
		}
	}
	return out, nil
}
