package surge

import (
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
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
	// another order (other lines): it is never applied.
	OrderConflict = "conflict"

	ReasonOutOfStock  = "out_of_stock"
	ReasonUnknownItem = "unknown_item"
)

// OrderLine is one line of an order: an item and how many of it.
type OrderLine struct {
	Item     int64 `json:"item"`
	Quantity int   `json:"quantity"`
}

// MaxOrderLines is the most lines an order (a cart) may have.
const MaxOrderLines = 20

// Order is one captured order (a cart of 1 to MaxOrderLines lines, an item
// at most once) as it travels through a queue. It is confirmed whole or
// rejected whole.
type Order struct {
	ID    string      `json:"id"` // the client's idempotency key, or a ULID
	Lines []OrderLine `json:"lines"`
	Node  string      `json:"node"`
	At    time.Time   `json:"at"`
	// Account is the logged-in buyer's account id; 0 for an anonymous
	// order (and every entry queued before accounts).
	Account int64 `json:"account,omitempty"`
}

var orderIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// ValidOrderID reports whether s can be an order id.
func ValidOrderID(s string) bool { return orderIDPattern.MatchString(s) }

// Validate checks an order's shape. Whether the items exist is checked
// against the catalogue at capture, and again by the worker, which rejects
// an order for an item it does not have.
func (o Order) Validate() error {
	if !ValidOrderID(o.ID) {
		return Errorf(EINVALID, "order_id must be 1-64 letters, digits or . _ : -")
	}
	if o.Account < 0 {
		return Errorf(EINVALID, "account must be a positive account id")
	}
	return ValidateLines(o.Lines)
}

// ValidateLines checks an order's lines: 1 to MaxOrderLines, each a
// positive item id (at most once) and a quantity from 1 to
// MaxOrderQuantity.
func ValidateLines(lines []OrderLine) error {
	if len(lines) < 1 || len(lines) > MaxOrderLines {
		return Errorf(EINVALID, "an order must have from 1 to %d lines, not %d", MaxOrderLines, len(lines))
	}
	seen := make(map[int64]bool, len(lines))
	for i, l := range lines {
		switch {
		case l.Item <= 0:
			return Errorf(EINVALID, "line %d: item must be a positive item id", i+1)
		case l.Quantity < 1 || l.Quantity > MaxOrderQuantity:
			return Errorf(EINVALID, "line %d: quantity must be a whole number from 1 to %d", i+1, MaxOrderQuantity)
		case seen[l.Item]:
			return Errorf(EINVALID, "line %d: item %d is already in the order; give each item once, with its whole quantity", i+1, l.Item)
		}
		seen[l.Item] = true
	}
	return nil
}

// Payload is what a repeat of the order must match to be the same order:
// its lines, by item ("item:quantity,item:quantity"). A one-line order's
// payload is "item:quantity", as it was before carts, so ids taken on a
// shard before an upgrade keep their meaning.
func (o Order) Payload() string { return LinesPayload(o.Lines) }

// LinesPayload writes lines in item order as "item:quantity,…".
func LinesPayload(lines []OrderLine) string {
	sorted := slices.Clone(lines)
	slices.SortFunc(sorted, func(a, b OrderLine) int { return cmp.Compare(a.Item, b.Item) })
	return FormatLines(sorted)
}

// FormatLines writes lines in their order as "item:quantity,…".
func FormatLines(lines []OrderLine) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(l.Item, 10))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(l.Quantity))
	}
	return b.String()
}

// ParseLinesPayload reads what FormatLines and LinesPayload write. The lines are not
// validated.
func ParseLinesPayload(s string) ([]OrderLine, error) {
	parts := strings.Split(s, ",")
	if len(parts) > MaxOrderLines {
		return nil, Errorf(EINVALID, "an order must have from 1 to %d lines, not %d", MaxOrderLines, len(parts))
	}
	lines := make([]OrderLine, 0, len(parts))
	for _, p := range parts {
		item, qty, ok := strings.Cut(p, ":")
		i, err1 := strconv.ParseInt(item, 10, 64)
		q, err2 := strconv.ParseInt(qty, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, Errorf(EINVALID, "malformed order line %q", p)
		}
		lines = append(lines, OrderLine{Item: i, Quantity: int(q)})
	}
	return lines, nil
}

// StateLine is a line of an applied order as a buyer sees it: the unit
// price when the order was decided, and why the line failed an order that
// was rejected (the lines at fault only).
type StateLine struct {
	Item     int64  `json:"item"`
	Quantity int    `json:"quantity"`
	Name     string `json:"name,omitempty"`
	Price    *Cents `json:"price,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// OrderState is what a buyer sees of an order: its status, and once a
// worker has decided it, its lines and total (the sum of price × quantity
// at the prices of that moment; absent if an item is unknown). The lines
// say which order the status is about, so a client that picked its own
// order_id can tell its order from another that took the id first. A
// one-line order also has the item and quantity at the top, as before carts.
type OrderState struct {
	OrderID  string      `json:"order_id"`
	Status   string      `json:"status"`
	Reason   string      `json:"reason,omitempty"`
	Item     int64       `json:"item,omitempty"`
	Quantity int         `json:"quantity,omitempty"`
	Lines    []StateLine `json:"lines,omitempty"`
	Total    *Cents      `json:"total,omitempty"`
}

// OrderLines returns the state's lines as order lines.
func (st OrderState) OrderLines() []OrderLine {
	lines := make([]OrderLine, len(st.Lines))
	for i, l := range st.Lines {
		lines[i] = OrderLine{Item: l.Item, Quantity: l.Quantity}
	}
	return lines
}

// PendingState is the state of an order just captured: pending, with the
// lines it was sent with.
func PendingState(o Order) OrderState {
	st := OrderState{OrderID: o.ID, Status: OrderPending, Lines: make([]StateLine, len(o.Lines))}
	for i, l := range o.Lines {
		st.Lines[i] = StateLine{Item: l.Item, Quantity: l.Quantity}
	}
	st.SetSingle()
	return st
}

// SetSingle sets the top-level item and quantity of a one-line order.
func (st *OrderState) SetSingle() {
	if len(st.Lines) == 1 {
		st.Item, st.Quantity = st.Lines[0].Item, st.Lines[0].Quantity
	}
}

// OrderOutcome is the result of applying an order. Short names the items
// at fault of a rejected order (out of stock, or unknown).
type OrderOutcome struct {
	ID, Status, Reason string
	Short              []int64
}

// Decision is the all-or-nothing choice on one order.
type Decision struct {
	Status, Reason string
	// Short: the items at fault, in line order: unknown ones for
	// unknown_item, else those whose stock does not suffice.
	Short []int64
}

// DecideOrder decides an order against the stock left (item -> units; an
// item missing from the map is unknown). It is confirmed only if every
// line's stock suffices, and then take lists what to subtract from stock;
// otherwise nothing is taken. An unknown item outweighs a shortage.
func DecideOrder(lines []OrderLine, stock map[int64]int64) Decision {
	var unknown, short []int64
	for _, l := range lines {
		left, known := stock[l.Item]
		switch {
		case !known:
			unknown = append(unknown, l.Item)
		case left < int64(l.Quantity):
			short = append(short, l.Item)
		}
	}
	switch {
	case len(unknown) > 0:
		return Decision{Status: OrderRejected, Reason: ReasonUnknownItem, Short: unknown}
	case len(short) > 0:
		return Decision{Status: OrderRejected, Reason: ReasonOutOfStock, Short: short}
	}
	return Decision{Status: OrderConfirmed}
}

// TakeStock applies a confirmed decision to stock: every line's quantity is
// subtracted. It does nothing for a rejected one.
func (d Decision) TakeStock(lines []OrderLine, stock map[int64]int64) {
	if d.Status != OrderConfirmed {
		return
	}
	for _, l := range lines {
		stock[l.Item] -= int64(l.Quantity)
	}
}
