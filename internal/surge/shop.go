package surge

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the shop.
const (
	MaxItemQuantity  = 1_000_000
	MaxPriceCents    = 100_000_000 // 1,000,000.00
	MaxOrderQuantity = 100
	MaxNameLength    = 100
	MaxTopicLength   = 40
	MaxDescription   = 2000 // characters
)

// Cents is an exact amount of money in hundredths. It is written as a
// decimal string with two places ("12.50").
type Cents int64

func (c Cents) String() string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// MarshalJSON writes the amount as a string, so no client reads a float.
func (c Cents) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// UnmarshalJSON reads the string form written by MarshalJSON.
func (c *Cents) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("price must be a string like \"12.50\": %w", err)
	}
	v, err := ParsePrice(s)
	if err != nil {
		return fmt.Errorf("price %q %w", s, err)
	}
	*c = v
	return nil
}

var pricePattern = regexp.MustCompile(`^(0|[1-9][0-9]{0,6})(\.[0-9]{1,2})?$`)

// ParsePrice reads a price such as "12.5" or "12.50": at most two decimals,
// from 0 to 1,000,000.
func ParsePrice(s string) (Cents, error) {
	if !pricePattern.MatchString(s) {
		return 0, fmt.Errorf("must be a decimal from 0 to 1000000 with at most 2 decimals")
	}
	whole, frac, _ := strings.Cut(s, ".")
	w, _ := strconv.ParseInt(whole, 10, 64)
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	c := Cents(w*100 + f)
	if c > MaxPriceCents {
		return 0, fmt.Errorf("must be at most 1000000")
	}
	return c, nil
}

// Item is something for sale.
type Item struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Quantity    int64  `json:"quantity"`
	Price       Cents  `json:"price"`
	Topic       string `json:"topic"`       // a slug such as "shoes"; "" for none
	Description string `json:"description"` // plain text
	// Retired items are off sale for good: not in the catalogue, and an
	// order line for one is rejected as unknown_item. Only admin sees them.
	Retired bool `json:"retired,omitempty"`
}

// ItemQuery is a catalogue search: items of Topic ("" for any) whose name
// or description has every word of Words ("" for any), a page of Limit
// from Offset.
type ItemQuery struct {
	Topic, Words  string
	Limit, Offset int
}

// Catalogue search bounds.
const (
	DefaultSearchLimit = 50
	MaxSearchLimit     = 200
	MaxSearchOffset    = 10_000
	MaxSearchWords     = 200 // bytes
)

// ItemInput is an admin's add-or-restock request, validated.
type ItemInput struct {
	Name     string
	Quantity int64
	Price    *Cents // nil: keep the current price (a restock); required for a new item
	// nil: keep the current one (a restock), "" for a new item.
	Topic, Description *string
}

// ParseItemDetails validates an item's topic (a slug of at most
// MaxTopicLength, or empty) and description (at most MaxDescription
// printable characters; new lines allowed) into in; nil keeps what the
// item has. Problems are added to fields.
func ParseItemDetails(in *ItemInput, topic, description *string, fields map[string]string) {
	if topic != nil {
		t := strings.ToLower(strings.TrimSpace(*topic))
		if t != "" && (!ValidSlug(t) || len(t) > MaxTopicLength) {
			fields["topic"] = fmt.Sprintf("must be at most %d lowercase letters, digits or dashes", MaxTopicLength)
		} else {
			in.Topic = &t
		}
	}
	if description != nil {
		d := strings.TrimSpace(*description)
		switch {
		case !utf8.ValidString(d):
			fields["description"] = "must be valid UTF-8"
		case utf8.RuneCountInString(d) > MaxDescription:
			fields["description"] = fmt.Sprintf("must be at most %d characters", MaxDescription)
		case strings.IndexFunc(d, func(r rune) bool { return !unicode.IsPrint(r) && r != '\n' && r != '\r' && r != '\t' }) >= 0:
			fields["description"] = "must contain only printable characters"
		default:
			in.Description = &d
		}
	}
}

// NormalizeItemName trims a name. Names are compared case-insensitively
// after trimming.
func NormalizeItemName(name string) string { return strings.TrimSpace(name) }

// ItemKey is the identity of an item name.
func ItemKey(name string) string { return strings.ToLower(NormalizeItemName(name)) }

// ParseItemInput validates raw fields (from JSON or a form). Every field
// with a problem gets its own message.
func ParseItemInput(name string, quantity json.Number, price *string) (ItemInput, error) {
	fields := map[string]string{}
	in := ItemInput{Name: NormalizeItemName(name)}
	switch n := utf8.RuneCountInString(in.Name); {
	case !utf8.ValidString(name):
		fields["name"] = "must be valid UTF-8"
	case n == 0:
		fields["name"] = "is required"
	case n > MaxNameLength:
		fields["name"] = fmt.Sprintf("must be at most %d characters", MaxNameLength)
	case strings.IndexFunc(in.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		fields["name"] = "must contain only printable characters"
	}
	q, err := strconv.ParseInt(string(quantity), 10, 64)
	switch {
	case quantity == "":
		fields["quantity"] = "is required"
	case err != nil:
		fields["quantity"] = "must be a whole number"
	case q < 0 || q > MaxItemQuantity:
		fields["quantity"] = fmt.Sprintf("must be from 0 to %d", MaxItemQuantity)
	default:
		in.Quantity = q
	}
	if price != nil && *price != "" {
		c, err := ParsePrice(*price)
		if err != nil {
			fields["price"] = err.Error()
		} else {
			in.Price = &c
		}
	}
	if len(fields) > 0 {
		return ItemInput{}, &Error{Code: EINVALID, Message: "invalid item", Fields: fields}
	}
	return in, nil
}

// Order statuses.
const (
	OrderPending   = "pending"
	OrderConfirmed = "confirmed"
	OrderRejected  = "rejected"
	// OrderConflict is the outcome of an entry that reuses the order_id of
	// another order (another item or quantity): it is never applied.
	OrderConflict = "conflict"

	ReasonOutOfStock  = "out_of_stock"
	ReasonUnknownItem = "unknown_item"
)

// Order is one captured order as it travels through a queue.
type Order struct {
	ID       string    `json:"id"` // the client's idempotency key, or a ULID
	Item     int64     `json:"item"`
	Quantity int       `json:"quantity"`
	Node     string    `json:"node"`
	At       time.Time `json:"at"`
}

var orderIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// ValidOrderID reports whether s can be an order id.
func ValidOrderID(s string) bool { return orderIDPattern.MatchString(s) }

// Validate checks an order's shape. Whether the item exists is checked
// against the catalogue at capture, and again by the worker, which rejects
// an order for an item it does not have.
func (o Order) Validate() error {
	switch {
	case !ValidOrderID(o.ID):
		return Errorf(EINVALID, "order_id must be 1-64 letters, digits or . _ : -")
	case o.Item <= 0:
		return Errorf(EINVALID, "item must be a positive item id")
	case o.Quantity < 1 || o.Quantity > MaxOrderQuantity:
		return Errorf(EINVALID, "quantity must be a whole number from 1 to %d", MaxOrderQuantity)
	}
	return nil
}

// Payload is what a repeat of the order must match to be the same order:
// its item and quantity.
func (o Order) Payload() string {
	return strconv.FormatInt(o.Item, 10) + ":" + strconv.Itoa(o.Quantity)
}

// OrderState is what a buyer sees of an order. Item and quantity say which
// order the status is about, so a client that picked its own order_id can
// tell its order from another that took the id first.
type OrderState struct {
	OrderID  string `json:"order_id"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	Item     int64  `json:"item,omitempty"`
	Quantity int    `json:"quantity,omitempty"`
}

// OrderOutcome is the result of applying an order.
type OrderOutcome struct {
	ID, Status, Reason string
}
