package surge

import (
	"strings"
	"time"
)

// Account is a registered user of the shop and of accounts-only polls. Its
// password hash never leaves the store and the login check.
type Account struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

// EmailKey is the identity of an email address: addresses compare
// case-insensitively.
func EmailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// AccountOrder is an order an account placed, as "my orders" lists it.
type AccountOrder struct {
	OrderState
	OrderedAt time.Time `json:"ordered_at"`
}
